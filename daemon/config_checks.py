"""Checks of a valid config against the machine (the files it names) and against good practice (warnings).

``check-config`` runs both, so an admin (and systemd's ``ExecStartPre=``) learns about a missing password file,
a TLS key that does not match its certificate or a model path with a typo before the daemon starts, not at the
first connection attempt an hour later. The daemon logs the warnings once at start-up.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from gaitwatch.daemon import fhir_sink
from gaitwatch.daemon.mqtt import MqttConfigError, TlsConfig, tls_context
from gaitwatch.daemon.redact import redact_text
from gaitwatch.daemon.settings import ConfigError, Settings, read_secret
from gaitwatch.daemon.sources import OpenCvCamera, SourceError, SourceKind, classify_source

# Schemes whose traffic is encrypted, so credentials in the URL are not readable on the network.
_ENCRYPTED_SCHEMES = ("rtsps://", "https://", "srtp://")


def check_references(settings: Settings) -> list[str]:
    """Problems with the files the config names (empty when everything is there and readable)."""
    problems: list[str] = []
    m = settings.mqtt
    if m.enabled and m.password_file is not None:
        try:
            read_secret(m.password_file)
        except ConfigError as exc:
            problems.append(str(exc))
    if m.enabled and m.tls is not None:
        missing = [
            f"mqtt.tls.{name}: {path} does not exist or is not a file"
            for name in ("ca_file", "cert_file", "key_file")
            if (path := getattr(m.tls, name)) is not None and not Path(path).is_file()
        ]
        problems += missing
        if not missing:  # parse only when all are there: a missing file is the clearer message
            try:
                tls_context(TlsConfig(ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file))
            except MqttConfigError as exc:
                problems.append(f"mqtt.tls: {exc}")
    if settings.fhir.enabled:
        # The token and the CA as the daemon reads them at start (exit 78 there too), so ExecStartPre= says it.
        try:
            fhir_sink.tls_context(fhir_sink.FhirConfig.from_settings(settings.fhir))
        except fhir_sink.FhirConfigError as exc:
            problems.append(str(exc))
    if settings.pose.model_path is not None and not settings.pose.model_path.is_file():
        problems.append(f"pose.model_path: {settings.pose.model_path} does not exist or is not a file")
    if settings.pose.student_dir is not None and not settings.pose.student_dir.is_dir():
        problems.append(f"pose.student_dir: {settings.pose.student_dir} is not a directory")
    blazepose_model = settings.detector.blazepose.model_path
    if "blazepose" in settings.detector.kind and blazepose_model is not None and not blazepose_model.is_file():
        problems.append(f"detector.blazepose.model_path: {blazepose_model} does not exist or is not a file")
    nanodet_model = settings.detector.nanodet.model_path
    if "nanodet" in settings.detector.kind and nanodet_model is not None and not nanodet_model.is_file():
        problems.append(f"detector.nanodet.model_path: {nanodet_model} does not exist or is not a file")
    onnx = settings.detector.onnx_model
    if settings.detector.kind == "onnx" and onnx is not None and not onnx.is_file():
        problems.append(f"detector.onnx_model: {onnx} does not exist or is not a file")
    for i, camera in enumerate(settings.cameras):
        if classify_source(camera.source) is SourceKind.FILE:
            try:
                OpenCvCamera(camera).check()
            except SourceError as exc:
                problems.append(f"cameras[{i}].source: {exc}")
    return problems


def config_warnings(settings: Settings) -> list[str]:
    """Settings that work but expose something: said on every check-config and at every start."""
    warnings: list[str] = []
    m = settings.mqtt
    if m.enabled and m.tls is None and (m.username is not None or m.password_file is not None):
        warnings.append(
            f"mqtt: the user name and password go to {m.host}:{m.port} in clear text (no [mqtt.tls]); anyone on "
            "the ward network can read them: configure TLS (usually port 8883)"
        )
    if settings.metrics.enabled and not _is_loopback(settings.metrics.address):
        warnings.append(
            f"metrics.address = {settings.metrics.address!r} serves the metrics endpoint beyond this PC (camera "
            "ids, alert counts, software version); keep 127.0.0.1 unless a firewall limits who can scrape it"
        )
    for camera in settings.cameras:
        if redact_text(camera.source) != camera.source and not camera.source.lower().startswith(_ENCRYPTED_SCHEMES):
            warnings.append(
                f"camera {camera.id}: its URL carries a password over an unencrypted protocol "
                f"({redact_text(camera.source)}); gaitwatch never prints it, but anyone on the camera network can "
                "read it: use a camera account that can only view the stream"
            )
    return warnings


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
