"""The built-in scene library (data): each folder holds an MJCF file and its spec.yaml. See docs/scenes.md."""
