"""marshmallow schemas, one module per api module. Unknown fields are refused (RAISE)."""
