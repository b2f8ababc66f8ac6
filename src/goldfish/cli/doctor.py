"""``goldfish doctor``: is this machine ready to run stages, and on which backend?

It reports the Python and Goldfish versions, the project (when one is found), the local GPUs
stages can ask for with ``compute.gpus`` (nvidia-smi / CUDA_VISIBLE_DEVICES), and what each
backend's doctor finds: the process backend's interpreter and pip
(:mod:`goldfish.backends.process.doctor`); whether the Docker engine answers, which base images
exist there, which piece the docker backend lacks (the ``docker`` package, the engine or the
base image) with the one command that fixes it (:mod:`goldfish.backends.docker.doctor`); what
``defaults.backend: auto`` picks; and, when the project uses GCE or GCS, every cloud check of
:func:`goldfish.backends.gce.doctor.diagnose_cloud` with the fix for each failure. This module
only parses and renders; nothing is built or changed. The exit code is 1 when the project asks
for the docker backend explicitly and it cannot work here, or when it uses GCE/GCS and a cloud
check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from goldfish import __version__


def add_doctor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``goldfish doctor``."""
    doctor = sub.add_parser(
        "doctor", help="check Docker, base images, which backend runs stages, and the GCE/GCS setup"
    )
    doctor.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)


def diagnose(project: str | None) -> dict[str, Any]:
    """Everything ``goldfish doctor`` reports, as data: each backend's doctor, side by side."""
    from goldfish.backends.docker import doctor as docker_doctor  # noqa: PLC0415 - loads lazily
    from goldfish.backends.factory import available_backends  # noqa: PLC0415
    from goldfish.backends.gce.doctor import diagnose_cloud  # noqa: PLC0415
    from goldfish.backends.gpus import discover  # noqa: PLC0415
    from goldfish.backends.process import doctor as process_doctor  # noqa: PLC0415
    from goldfish.config import GoldfishConfig, load_config  # noqa: PLC0415
    from goldfish.errors import GoldfishError  # noqa: PLC0415
    from goldfish.project import discover_project  # noqa: PLC0415

    report: dict[str, Any] = {
        "goldfish": __version__,
        "python": sys.version.split()[0],
        "backends": available_backends(),
    }
    root = None
    try:
        root = discover_project(project)
        config = load_config(root)
        report["project"] = str(root)
    except GoldfishError as exc:
        config = GoldfishConfig(project_name="none")
        report["project"] = None
        report["project_problem"] = exc.message
    report["process"] = process_doctor.diagnose()
    docker = docker_doctor.diagnose(config.docker)
    readiness = docker.readiness
    report["docker"] = {**docker.engine, "missing": readiness.missing, "fix": readiness.fix}
    report["base_images"] = docker.base_images
    report["default_backend"] = config.defaults.backend
    report["auto_picks"] = "docker" if readiness.ready else "process"
    if not readiness.ready:
        report["auto_reason"] = readiness.detail
    report["gpus"] = discover().describe()
    cloud = diagnose_cloud(config, root)
    report["cloud"] = cloud
    docker_ok = readiness.ready or config.defaults.backend != "docker"
    report["ok"] = docker_ok and (cloud["ok"] or not cloud["needed"])
    return report


def _check_line(check: dict[str, Any]) -> str:
    """One cloud check as text: mark, name, detail."""
    if check.get("skipped"):
        mark = "-"
    elif not check["ok"]:
        mark = "✗"
    else:
        mark = "!" if check.get("warning") else "✓"
    return f"  {mark} {check['name']}: {check['detail']}"


def print_cloud(cloud: dict[str, Any]) -> None:
    """Print the ``gce/gcs:`` section: one line per check, the fix under each failure or warning.

    Marks: ``✓`` passed, ``!`` passed with a warning, ``✗`` failed, ``-`` not checked (an
    earlier failure blocks it).
    """
    if not cloud["needed"]:
        print("gce/gcs: not used by this project (nothing to check)")
        return
    print(f"gce/gcs: {'ready' if cloud['ok'] else 'not ready'}")
    for check in cloud["checks"]:
        print(_check_line(check))
        # A skipped check's fix repeats the failure it waits on: printed once, there.
        if check["fix"] and not check.get("skipped") and (not check["ok"] or check.get("warning")):
            print(f"      fix: {check['fix']}")


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the diagnosis (text or JSON)."""
    report = diagnose(args.project)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    backends = ", ".join(report["backends"])
    print(f"goldfish {report['goldfish']} (Python {report['python']}); backends: {backends}")
    print(f"project: {report['project'] or 'none found (' + report.get('project_problem', '') + ')'}")
    print(process_line(report["process"]))
    docker = report["docker"]
    if docker.get("reachable"):
        print(
            f"docker: reachable, engine {docker.get('server_version')} (API {docker.get('api_version')}, "
            f"storage {docker.get('storage_driver')})"
        )
    else:
        print(f"docker: not reachable: {docker.get('error')}")
    for image in report["base_images"]:
        where = f"{image['image_id'][:19]} {image['size_mb']} MB" if image["present"] else "missing"
        print(f"  base image {image['name']} ({image['role']}): {where}")
    if docker.get("missing"):
        print(f"  missing: the docker {docker['missing'].replace('_', ' ')}; fix: {docker['fix']}")
    reason = f" ({report['auto_reason']})" if report.get("auto_reason") else ""
    print(f"defaults.backend: {report['default_backend']}; auto picks {report['auto_picks']}{reason}")
    print(gpu_line(report["gpus"]))
    print_cloud(report["cloud"])
    return 0 if report["ok"] else 1


def gpu_line(gpus: dict[str, Any]) -> str:
    """Local GPUs for ``compute.gpus`` as one line (with why there are none)."""
    if not gpus["count"]:
        return f"gpus: none for local stages ({gpus.get('problem') or 'no GPU found'})"
    each = ", ".join(
        f"{gpu['index']}"
        + (f" ({gpu['memory_free_mb']:g} MB free)" if gpu.get("memory_free_mb") is not None else "")
        for gpu in gpus["gpus"]
    )
    return f"gpus: {gpus['count']} via {gpus['source']}: {each}"


def process_line(process: dict[str, Any]) -> str:
    """The process backend as one line: its interpreter and where a requirements venv's pip comes from."""
    where = {"server": "the server's pip", "ensurepip": "pip from ensurepip"}.get(process["pip"] or "")
    pip = f"requirements.txt venvs use {where}" if where else f"no pip for requirements.txt: {process['fix']}"
    return f"process: python {process['python']} ({process['interpreter']}); {pip}"
