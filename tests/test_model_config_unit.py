"""What the probe reads from a saved model's configuration before Keras loads it (pure, no TensorFlow).

The configurations are trimmed from real files saved by TF 2.21 / Keras 3.15 and TF 2.15 / Keras 2.15.
"""

from __future__ import annotations

import pytest

from envrepro.probe import failures, modelconfig

CODE = "4wEAAAAAAAAAAAAAAAIAAAADAAAA8wwAAACXAHwAZAF6BQAAUwAp"
INPUT = {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "x"}}
KERAS3_LAMBDA = {
    "class_name": "Functional",
    "config": {
        "layers": [
            INPUT,
            {
                "class_name": "Lambda",
                "config": {
                    "name": "double",
                    "function": {"class_name": "__lambda__", "config": {"code": CODE, "defaults": None}},
                    "arguments": {},
                },
            },
        ]
    },
}
KERAS2_H5_LAMBDA = {
    "class_name": "Functional",
    "config": {
        "layers": [
            INPUT,
            {
                "class_name": "Lambda",
                "config": {
                    "name": "double",
                    "function": [CODE, None, None],
                    "function_type": "lambda",
                    "output_shape": None,
                    "output_shape_type": "raw",
                },
            },
        ]
    },
}
NAMED_FUNCTION_LAMBDA = {
    "class_name": "Lambda",
    "config": {"name": "act", "function": "relu", "function_type": "function", "output_shape_type": "raw"},
}


def custom_model(module: str | None) -> dict[str, object]:
    scale: dict[str, object] = {"class_name": "Scale", "config": {"name": "scale", "factor": 3.0}}
    dense: dict[str, object] = {
        "class_name": "Dense",
        "config": {"units": 2, "kernel_initializer": {"class_name": "GlorotUniform", "config": {}}},
    }
    if module is not None:  # the .keras format records where every class came from
        scale.update(module=module, registered_name="Scale")
        dense["module"] = "keras.layers"
    return {"class_name": "Sequential", "module": "keras", "config": {"layers": [INPUT, scale, dense]}}


@pytest.mark.parametrize("config", [KERAS3_LAMBDA, KERAS2_H5_LAMBDA], ids=["keras3", "keras2-h5"])
def test_a_lambda_holding_python_code_is_found_in_either_keras_form(config):
    assert modelconfig.unsafe_lambdas(config) == ["double"]


def test_a_lambda_naming_a_function_and_ordinary_layers_hold_no_code():
    assert (
        modelconfig.unsafe_lambdas(
            {"class_name": "Sequential", "config": {"layers": [NAMED_FUNCTION_LAMBDA]}}
        )
        == []
    )
    assert modelconfig.unsafe_lambdas(custom_model("custom_layers")) == []
    assert modelconfig.unsafe_lambdas(None) == []


def test_a_lambda_with_a_python_output_shape_is_unsafe_too():
    layer = {
        "class_name": "Lambda",
        "config": {"name": "shape", "function": "relu", "output_shape_type": "lambda"},
    }
    assert modelconfig.unsafe_lambdas(layer) == ["shape"]


@pytest.mark.parametrize(
    ("module", "expected"), [("custom_layers", [("Scale", "custom_layers")]), (None, [("Scale", "")])]
)
def test_layer_classes_keras_does_not_know_are_named_with_their_module(module, expected):
    keras_layers = {"Dense", "InputLayer"}
    assert modelconfig.missing_classes(custom_model(module), keras_layers.__contains__) == expected


def test_classes_given_as_custom_objects_or_saved_from_keras_are_not_missing():
    assert modelconfig.missing_classes(custom_model("custom_layers"), {"Scale"}.__contains__) == []
    assert modelconfig.missing_classes(custom_model(None), {"Scale", "Dense"}.__contains__) == []
    assert modelconfig.missing_classes(KERAS3_LAMBDA, lambda name: False) == [("Lambda", "")]


def test_the_missing_classes_message_names_them_and_the_flag():
    text = modelconfig.describe_missing([("Scale", "custom_layers"), ("Gate", "")], ["Other"])
    assert text.startswith(
        "needs custom objects that are not available: Scale (saved from module custom_layers), Gate;"
    )
    assert "--custom-objects" in text
    assert "defines them" in text
    assert text.endswith("(the custom objects given define only: Other)")


def test_a_keras_message_loses_its_configuration_dump_not_its_point():
    exc = TypeError(
        "<class 'keras.src.models.sequential.Sequential'> could not be deserialized properly. Please "
        "ensure that components ...\n\nconfig={'module': 'keras', 'class_name': 'Sequential', "
        + "'x': 1, "
        * 200
    )
    error = failures.classify_load_error(exc)
    assert error.kind == "custom_objects"
    assert "config=" not in error.detail
    assert "\n" not in error.detail


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Unable to synchronously open file (truncated file: eof = 1)", "corrupt"),
        ("Requested the deserialization of a `Lambda` layer ... `safe_mode=False`", "unsafe"),
        (
            "Unknown layer: 'Scale'. Please ensure you are using a `keras.utils.custom_object_scope`",
            "custom_objects",
        ),
        ("something else entirely", "load_failed"),
    ],
)
def test_loader_errors_are_classified_by_what_the_user_must_do(message, kind):
    error = failures.classify_load_error(ValueError(message))
    assert error.kind == kind
    if kind == "unsafe":
        assert "--unsafe-deserialization" in error.detail
