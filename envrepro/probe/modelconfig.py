"""What a saved Keras model's configuration says, read as plain JSON before Keras is asked to load it.

Pure functions over the decoded configuration (the `model_config` attribute of an .h5, the `config.json`
of a .keras archive): which Lambda layers carry Python code, and which layer classes the running Keras
does not know. Standard library only.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

JsonDict = Dict[str, Any]
# Packages whose classes are Keras's own: a layer saved from one of them needs no --custom-objects.
KERAS_PACKAGES = frozenset(["keras", "tf_keras", "tensorflow"])
# Layer-level classes every Keras knows but does not export from keras.layers.
CONTAINERS = frozenset(["Functional", "Sequential", "Model", "InputLayer"])


def objects(node: Any) -> Iterator[JsonDict]:
    """Every serialized object (a dict with a class_name) in the configuration, depth first."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from objects(item)


def _is_python_code(config: JsonDict, key: str) -> bool:
    value = config.get(key)
    if isinstance(value, dict) and value.get("class_name") == "__lambda__":
        return True  # Keras 3 (and the .keras format of Keras 2): marshalled bytecode
    return config.get(key + "_type") == "lambda"  # Keras 2 .h5: [bytecode, defaults, closure]


def unsafe_lambdas(config: Any) -> List[str]:
    """Names of the Lambda layers whose function or output shape is Python bytecode (unsafe to load)."""
    found = []
    for obj in objects(config):
        inner = obj.get("config")
        if obj.get("class_name") != "Lambda" or not isinstance(inner, dict):
            continue
        if _is_python_code(inner, "function") or _is_python_code(inner, "output_shape"):
            found.append(str(inner.get("name") or obj.get("name") or "?"))
    return found


def layers(node: Any) -> Iterator[JsonDict]:
    """The model and every layer in it, nested models included (not initializers, dtypes, ...)."""
    if not isinstance(node, dict) or "class_name" not in node:
        return
    yield node
    inner = node.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
        for layer in inner["layers"]:
            yield from layers(layer)


def missing_classes(config: Any, known: Callable[[str], bool]) -> List[Tuple[str, str]]:
    """(class name, module it was saved from) of each layer class neither Keras's own nor `known`."""
    missing: List[Tuple[str, str]] = []
    for layer in layers(config):
        name = str(layer["class_name"])
        module = str(layer.get("module") or "")
        registered = str(layer.get("registered_name") or "")
        if module.split(".", maxsplit=1)[0] in KERAS_PACKAGES or name in CONTAINERS:
            continue
        if known(name) or (registered and known(registered)):
            continue
        if (name, module) not in missing:
            missing.append((name, module))
    return missing


def describe_missing(missing: List[Tuple[str, str]], custom_names: List[str]) -> str:
    """`Scale (saved from module custom_layers)`, ..., and what to do about them."""
    names = ", ".join(
        name + (" (saved from module %s)" % module if module else "") for name, module in missing
    )
    it = "them" if len(missing) > 1 else "it"
    text = (
        "needs custom objects that are not available: %s; pass --custom-objects with the module or .py "
        % names
    )
    text += "file that defines %s" % it
    if custom_names:
        text += " (the custom objects given define only: %s)" % ", ".join(sorted(custom_names))
    return text
