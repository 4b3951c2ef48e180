"""The plugin's tests run pytest inside pytest (pytester)."""

pytest_plugins = ["pytester"]
