// PromptKeeper UI: the chat message editor (add, remove, reorder) and the live preview.
// No framework: the pages work without it, the editor is friendlier with it.
(function () {
  "use strict";

  function debounce(fn, ms) {
    let timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function setupEditor(form) {
    const editor = form.querySelector("[data-editor]");
    if (!editor) return;
    const type = editor.querySelector("[data-type]");
    const text = editor.querySelector("[data-text]");
    const chat = editor.querySelector("[data-chat]");
    const list = editor.querySelector("[data-messages]");
    const preview = form.parentElement.querySelector("[data-preview]") || form.querySelector("[data-preview]");

    function showType() {
      const isChat = type.value === "chat";
      chat.hidden = !isChat;
      text.hidden = isChat;
    }
    type.addEventListener("change", function () { showType(); refresh(); });

    function renumber() {
      list.querySelectorAll("[data-message]").forEach(function (item, index) {
        item.querySelector("select").setAttribute("aria-label", "Role of message " + (index + 1));
        item.querySelector("textarea").setAttribute("aria-label", "Content of message " + (index + 1));
      });
    }

    editor.querySelector("[data-add]").addEventListener("click", function () {
      const items = list.querySelectorAll("[data-message]");
      const copy = items[items.length - 1].cloneNode(true);
      copy.querySelector("textarea").value = "";
      copy.querySelector("select").value = "user";
      list.appendChild(copy);
      renumber();
      copy.querySelector("textarea").focus();
      refresh();
    });

    list.addEventListener("click", function (event) {
      const button = event.target.closest("button");
      if (!button) return;
      const item = button.closest("[data-message]");
      if (button.hasAttribute("data-remove") && list.children.length > 1) item.remove();
      if (button.hasAttribute("data-up") && item.previousElementSibling) list.insertBefore(item, item.previousElementSibling);
      if (button.hasAttribute("data-down") && item.nextElementSibling) list.insertBefore(item.nextElementSibling, item);
      renumber();
      refresh();
    });

    const refresh = debounce(function () {
      if (!preview) return;
      const data = new URLSearchParams(new FormData(form));
      if (type.disabled) data.set("type", type.value);
      data.set("csrf", preview.dataset.csrf);
      fetch("/ui/preview", { method: "POST", body: data, credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" } })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          const doc = new DOMParser().parseFromString(html, "text/html");
          const body = doc.querySelector("[data-testid=preview-body]");
          preview.replaceChildren(body ? document.importNode(body, true) : document.createTextNode("Preview unavailable"));
        });
    }, 250);

    form.addEventListener("input", refresh);
    showType();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-edit-form]").forEach(setupEditor);
  });
})();
