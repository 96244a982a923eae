"""Storage: engine and sessions (`engine`), declarative base (`base`), migrations (`migrate`)."""
