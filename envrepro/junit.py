"""The parity report as JUnit XML, which CI systems show as test results: one case per output, one for the
model fingerprint. Pure: returns the document's text."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from envrepro.parity_model import OutputResult, ParityReport


def number(value: float | None, spec: str = ".3g") -> str:
    """A measured number as reports print it; an em dash when there is none (or it is not finite)."""
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def parity_junit(report: ParityReport) -> str:
    """JUnit XML: one test case per output and one for the model fingerprint."""
    suite = _junit_suite(report)
    _fingerprint_case(suite, report)
    cases = [("preprocessing", "PreprocessingDiffers", o) for o in report.preprocessing]
    cases += [("output", "ParityFailure", o) for o in report.outputs]
    for label, kind, out in cases:
        _output_case(suite, report, f"{label} {out.name}", kind, out)
    root = ET.Element(
        "testsuites",
        {
            "name": "envrepro",
            "tests": suite.get("tests", "0"),
            "failures": suite.get("failures", "0"),
            "errors": "0",
        },
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_suite(report: ParityReport) -> ET.Element:
    outputs = (*report.outputs, *report.preprocessing)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"envrepro-parity:{report.model}",
            "tests": str(len(outputs) + 1),
            "failures": str(sum(not o.passed for o in outputs) + int(report.model_mismatch)),
            "errors": "0",
            "skipped": "0",
            "time": f"{sum(report.timings.values()):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("image", report.image),
        ("snapshot_digest", report.snapshot_digest),
        ("samples", str(report.samples)),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    return suite


def _junit_case(suite: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"classname": "envrepro.parity", "name": name, "time": "0"})


def _fingerprint_case(suite: ET.Element, report: ParityReport) -> None:
    case = _junit_case(suite, "model fingerprint")
    if report.model_mismatch:
        failure = ET.SubElement(case, "failure", {"message": "model mismatch", "type": "ModelMismatch"})
        failure.text = "\n".join(
            f"{f.what}: {f.reference} recorded, {f.candidate} now" for f in report.fingerprints if not f.same
        )


def _output_case(suite: ET.Element, report: ParityReport, name: str, kind: str, out: OutputResult) -> None:
    case = _junit_case(suite, name)
    if not out.passed:
        failure = ET.SubElement(case, "failure", {"message": out.reason, "type": kind})
        failure.text = (
            f"max abs {number(out.max_abs_error)}, max rel {number(out.max_rel_error)}, "
            f"smallest passing atol {number(out.min_passing_atol)}\n"
            + "\n".join(f"likely cause: {c.cause} ({c.evidence})" for c in report.likely_causes)
        )
