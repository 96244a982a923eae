"""The `Prompt` the SDK hands to applications."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from promptkeeper.core.templates import content_placeholders, content_variables, render_content

Source = Literal["server", "snapshot", "fallback"]


#: `config` keys passed to the provider SDKs by `model_params`.
MODEL_PARAMS = (
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


class Prompt:
    """One resolved prompt version. Immutable; `render()` fills in variables.

    `source` says where it came from: `server` (fetched, possibly served from the in-memory cache),
    `snapshot` (the on-disk last-known-good file, when the server was unreachable) or `fallback`
    (the caller's own fallback prompt).

    While an experiment runs: the prompt fetched without a unit carries the experiment's plan
    (`experiment`, with every variant as a Prompt in `variants`); the prompt served to a unit has
    `experiment_id`, `variant` (its key) and the `request_id` that outcomes are logged against.
    """

    __slots__ = (
        "name",
        "version",
        "environment",
        "revision",
        "content",
        "variables",
        "placeholders",
        "source",
        "etag",
        "experiment",
        "variants",
        "experiment_id",
        "variant",
        "unit",
        "request_id",
        "includes",
    )

    def __init__(
        self,
        *,
        name: str,
        version: int,
        environment: str | None,
        revision: int | None,
        content: dict[str, Any],
        variables: list[str],
        placeholders: list[str],
        source: Source = "server",
        etag: str | None = None,
        experiment: dict[str, Any] | None = None,
        experiment_id: int | None = None,
        variant: str | None = None,
        unit: str | None = None,
        request_id: str | None = None,
        includes: list[dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.environment = environment
        self.revision = revision
        self.content = content
        self.variables = variables
        self.placeholders = placeholders
        self.source: Source = source
        self.etag = etag
        self.experiment = experiment
        self.experiment_id = experiment_id
        self.variant = variant
        self.unit = unit
        self.request_id = request_id
        #: the prompts a composed prompt includes (`{name, label, version, revision}`), nested too
        self.includes: tuple[dict[str, Any], ...] = tuple(includes or ())
        self.variants: tuple[Prompt, ...] = ()
        if experiment is not None:
            self.variants = tuple(
                Prompt(
                    name=name,
                    version=v["version"],
                    environment=environment,
                    revision=revision,
                    content=v["content"],
                    variables=list(v.get("variables", [])),
                    placeholders=list(v.get("placeholders", [])),
                    source=source,
                    etag=etag,
                    experiment_id=experiment["id"],
                    variant=v["key"],
                )
                for v in experiment["variants"]
            )

    @property
    def type(self) -> Literal["text", "chat"]:
        return "chat" if self.content.get("type") == "chat" else "text"

    @property
    def config(self) -> dict[str, Any]:
        """Model configuration stored with the version (model, temperature, ...)."""
        config: dict[str, Any] = self.content.get("config", {})
        return config

    @property
    def template(self) -> str | None:
        """The template of a text prompt (None for chat prompts)."""
        return self.content.get("template") if self.type == "text" else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The message templates of a chat prompt (empty for text prompts)."""
        messages: list[dict[str, Any]] = self.content.get("messages", []) if self.type == "chat" else []
        return messages

    def render(self, **variables: Any) -> str | list[dict[str, Any]]:
        """A string for a text prompt; a list of `{"role", "content"}` messages for a chat prompt.

        Raises `MissingVariables` naming every missing variable, or `RenderFailed`.
        """
        return render_content(self.content, variables)

    def render_mapping(self, variables: Mapping[str, Any]) -> str | list[dict[str, Any]]:
        """`render` for variables whose names are not Python identifiers."""
        return render_content(self.content, variables)

    def openai_messages(self, **variables: Any) -> list[dict[str, Any]]:
        """Rendered messages for OpenAI's Chat Completions (`messages=`); a text prompt becomes one
        user message. Placeholders are filled from the variable of the same name."""
        rendered = render_content(self.content, variables)
        if isinstance(rendered, str):
            return [{"role": "user", "content": rendered}]
        return rendered

    def anthropic_messages(self, **variables: Any) -> tuple[str | None, list[dict[str, Any]]]:
        """`(system, messages)` for Anthropic's Messages API: system and developer messages are
        joined into the separate `system` text (Anthropic has no system role in `messages`)."""
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        for message in self.openai_messages(**variables):
            if message["role"] in ("system", "developer"):
                system.append(str(message["content"]))
            else:
                messages.append({"role": message["role"], "content": message["content"]})
        return ("\n\n".join(system) or None), messages

    def model_params(self, api: Literal["openai", "anthropic"] = "openai") -> dict[str, Any]:
        """The version's model settings as keyword arguments for the `openai` or `anthropic` SDK
        (`model`, `temperature`, `max_tokens`, ...), leaving out other config keys (such as tools).
        For Anthropic, `stop` becomes `stop_sequences`, sampling settings the SDK takes no keyword for
        (`temperature`, `top_p`) travel in `extra_body`, and parameters the API lacks are dropped."""
        params = {key: value for key, value in self.config.items() if key in MODEL_PARAMS}
        if api == "anthropic":
            for key in ("seed", "presence_penalty", "frequency_penalty"):
                params.pop(key, None)
            if "stop" in params:
                stop = params.pop("stop")
                params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
            sampling = {key: params.pop(key) for key in ("temperature", "top_p") if key in params}
            if sampling:
                params["extra_body"] = sampling
        return params

    def to_langchain(self) -> Any:
        """A LangChain `PromptTemplate` (text) or `ChatPromptTemplate` (chat; placeholders become
        `MessagesPlaceholder`s), with Jinja2 templates like ours. Needs the `langchain` extra."""
        try:
            from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate
        except ImportError:
            raise ImportError(
                "to_langchain needs langchain-core: pip install 'promptkeeper[langchain]'"
            ) from None
        if self.type == "text":
            return PromptTemplate.from_template(str(self.template), template_format="jinja2")
        roles = {"system": "system", "developer": "system", "user": "human", "assistant": "ai"}
        parts: list[Any] = []
        for message in self.messages:
            if message.get("type") == "placeholder":
                parts.append(MessagesPlaceholder(message["name"]))
            elif message["role"] in roles:
                parts.append((roles[message["role"]], message["content"]))
            else:
                raise ValueError(f"LangChain prompt templates have no '{message['role']}' messages")
        return ChatPromptTemplate.from_messages(parts, template_format="jinja2")

    def otel_attributes(self) -> dict[str, str | int]:
        """OpenTelemetry span attributes that link the span of the model call to this version, so
        the server's OTLP receiver (`/otlp/v1/traces`) turns the span into a generation record for
        the monitors and, for a prompt served to a unit in an experiment, an outcome of the variant
        served (docs/opentelemetry.md). Empty for a caller's fallback: no version to credit.

            with tracer.start_as_current_span("chat", attributes=prompt.otel_attributes()): ...
        """
        if self.source == "fallback" or self.version < 1:
            return {}
        attributes: dict[str, str | int] = {
            "promptkeeper.prompt.name": self.name,
            "promptkeeper.prompt.version": self.version,
        }
        if self.environment is not None:
            attributes["promptkeeper.prompt.environment"] = self.environment
        if self.request_id is not None:
            attributes["promptkeeper.prompt.request_id"] = self.request_id
        if self.unit is not None:
            attributes["promptkeeper.prompt.unit"] = self.unit
        if self.experiment_id is not None and self.variant is not None and self.unit is not None:
            attributes["promptkeeper.prompt.experiment"] = self.experiment_id
            attributes["promptkeeper.prompt.variant"] = self.variant
        return attributes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "environment": self.environment,
            "revision": self.revision,
            "content": self.content,
            "variables": self.variables,
            "placeholders": self.placeholders,
            "etag": self.etag,
            **({"experiment": self.experiment} if self.experiment is not None else {}),
            **({"includes": list(self.includes)} if self.includes else {}),
        }

    @classmethod
    def from_resolve(cls, body: Mapping[str, Any], *, etag: str | None, source: Source = "server") -> Prompt:
        return cls(
            name=body["name"],
            version=body["version"],
            environment=body.get("environment"),
            revision=body.get("revision"),
            content=body["content"],
            variables=list(body.get("variables", [])),
            placeholders=list(body.get("placeholders", [])),
            source=source,
            etag=etag,
            experiment=body.get("experiment"),
            includes=body.get("includes"),
        )

    @classmethod
    def from_fallback(cls, name: str, fallback: Any, environment: str | None) -> Prompt:
        """A prompt from a caller's fallback: a template string, a list of messages, content, or a Prompt."""
        if isinstance(fallback, Prompt):
            content = fallback.content
        elif isinstance(fallback, str):
            content = {"type": "text", "template": fallback}
        elif isinstance(fallback, list):
            content = {"type": "chat", "messages": fallback}
        elif isinstance(fallback, Mapping) and fallback.get("type") in ("text", "chat"):
            content = dict(fallback)
        else:
            raise TypeError(
                f"fallback for '{name}' must be a template string, a list of messages, "
                f"a content dict with 'type', or a Prompt; got {type(fallback).__name__}"
            )
        return cls(
            name=name,
            version=0,
            environment=environment,
            revision=None,
            content=content,
            variables=content_variables(content),
            placeholders=content_placeholders(content),
            source="fallback",
        )

    def with_source(self, source: Source) -> Prompt:
        return Prompt(
            name=self.name,
            version=self.version,
            environment=self.environment,
            revision=self.revision,
            content=self.content,
            variables=self.variables,
            placeholders=self.placeholders,
            source=source,
            etag=self.etag,
            experiment=self.experiment,
            includes=list(self.includes),
        )

    def served_to(self, unit: str, request_id: str) -> Prompt:
        """This variant as served to one unit for one request (a light copy)."""
        served = Prompt.__new__(Prompt)
        for slot in Prompt.__slots__:
            object.__setattr__(served, slot, getattr(self, slot))
        served.unit = unit
        served.request_id = request_id
        return served

    def __repr__(self) -> str:
        variant = f", variant {self.variant}" if self.variant is not None else ""
        return (
            f"<Prompt {self.name} v{self.version} ({self.environment or 'pinned'}, {self.source}{variant})>"
        )
