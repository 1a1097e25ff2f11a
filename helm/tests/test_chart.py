"""Checks of the Helm chart in helm/shop, the Dockerfile and compose.yaml.

- the chart lints cleanly in strict mode and its values schema refuses bad values;
- it renders with the default values and with every optional feature on, and every rendered
  manifest is valid against the Kubernetes schemas (the ServiceMonitor, a CRD, is checked by shape);
- the two StatefulSets are the same but for orders' way to products (URL, timeout, token);
- it cannot drift from the code: the flags and SHOP_* variables it sets are the ones
  `products --help` and `orders --help` list, ports equal the --listen ports, probe paths are
  routes the services serve, files named by flags are mounted from the right Secrets, and the
  exact command lines of the rendered containers start the real binaries, answer the probe
  paths and stop on SIGTERM within the grace period.

The binaries come from $SHOP_BIN_DIR (default: target/debug under the repository).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "shop"
BIN_DIR = Path(os.environ.get("SHOP_BIN_DIR", "target/debug"))
if not BIN_DIR.is_absolute():
    BIN_DIR = REPO / BIN_DIR

RELEASE = "rel"
NAMESPACE = "shop"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion is >=1.27; 1.30 is the oldest
# still maintained) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
SERVICES = ("products", "orders")
# Routes the probes and the ServiceMonitor use; each must be a GET route of both services.
HEALTH, READY, METRICS = "/healthz", "/readyz", "/metrics"
# Environment variables the binaries read that --help does not list (tracing's filter).
NON_SHOP_ENV = {"RUST_LOG"}

PUBLIC_KEY = "ed25519/" + "ab" * 32
ORDERS_TOKEN = "En0KEwoEdXNlchgDIgkKBwgKEgMYgAgSJAgAEiBexample_token-value"
ALL_ON: dict[str, Any] = {
    "ingress": {"enabled": True, "className": "nginx", "tls": {"enabled": True}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"enabled": True, "extraFrom": [{"podSelector": {"matchLabels": {"role": "debug"}}}]},
    "pdb": {"enabled": True},
    "auth": {
        "publicKey": {"create": True, "value": PUBLIC_KEY},
        "ordersToken": {"create": True, "value": ORDERS_TOKEN},
        "revokedTokens": ["deadbeef", "0123abcd"],
    },
    "products": {
        "workers": 2,
        "bodyLimit": 131072,
        "reservationTtl": "2m",
        "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
    },
    "orders": {"bodyLimit": 131072, "productsTimeoutMs": 1500, "extraArgs": ["--workers=2"]},
    "logFormat": "json",
    "grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "1"}},
}
ALL_OFF: dict[str, Any] = {"networkPolicy": {"enabled": False}, "pdb": {"enabled": False}}
SCENARIOS = {"defaults": {}, "all-on": ALL_ON, "all-off": ALL_OFF}


# --- rendering -------------------------------------------------------------------------------


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce them."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests_of(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@functools.lru_cache(maxsize=None)
def _rendered(name: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    out = render(SCENARIOS[name])
    return out, manifests_of(out)


def manifests(name: str) -> list[dict[str, Any]]:
    return copy.deepcopy(_rendered(name)[1])


def notes(name: str) -> str:
    return next(t for p, t in _rendered(name)[0].items() if p.endswith("NOTES.txt"))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def statefulset(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    (sts,) = [d for d in of_kind(docs, "StatefulSet") if d["metadata"]["name"].endswith(f"-{service}")]
    return sts


def container(sts: dict[str, Any]) -> dict[str, Any]:
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {
            "In": present and value in e.get("values", []),
            "NotIn": not present or value not in e.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


# --- the binaries ----------------------------------------------------------------------------


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: build the binaries (cargo build -p products -p orders -p shop) "
            "and point SHOP_BIN_DIR at their directory"
        )
    return path


@functools.lru_cache(maxsize=None)
def help_text(*command: str) -> str:
    out = subprocess.run([binary(command[0]), *command[1:], "--help"], capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout


class Help:
    """What a clap --help says: options, whether each takes a value, env names, defaults."""

    def __init__(self, *command: str) -> None:
        text = help_text(*command)
        self.text = text
        self.takes_value: dict[str, bool] = {}
        self.env: dict[str, str] = {}  # flag -> env var
        self.default: dict[str, str] = {}
        current = None
        for line in text.splitlines():
            m = re.match(r"^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)(\s+<[^>]+>)?", line)
            if m:
                current = m.group(1)
                self.takes_value[current] = bool(m.group(2))
            if current:
                for env in re.findall(r"\[env: ([A-Z0-9_]+)=", line):
                    self.env[current] = env
                for default in re.findall(r"\[default: ([^\]]+)\]", line):
                    self.default[current] = default
        usage = next(line for line in text.splitlines() if line.startswith("Usage:"))
        # Options outside [OPTIONS] and outside <a|b> groups are required.
        self.required = set(re.findall(r"(?<![<|])--([a-z0-9-]+) <", usage))

    @property
    def env_names(self) -> set[str]:
        return set(self.env.values())


def parse_args(args: list[str], h: Help) -> dict[str, str | None]:
    """Flag -> value of a command line, refusing what the binary would not accept."""
    parsed: dict[str, str | None] = {}
    it = iter(args)
    for arg in it:
        assert arg.startswith("--"), f"unexpected positional argument {arg!r}"
        name, eq, value = arg[2:].partition("=")
        assert name in h.takes_value, f"--{name} is not an option the binary lists in --help"
        if h.takes_value[name]:
            if not eq:
                value = next(it, None)
                assert value is not None, f"--{name} needs a value"
        else:
            assert not eq, f"--{name} takes no value"
            value = None
        parsed[name] = value
    return parsed


# --- lint and schema -------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(scenario: str) -> None:
    report = helm.lint(CHART, SCENARIOS[scenario], strict=True, kube_version="v1.30.0",
                       namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Strict mode: warnings count; only informational messages (such as "icon is recommended") pass.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_reports_a_broken_chart_input() -> None:
    # The linter is really wired: a value the schema refuses is an error.
    report = helm.lint(CHART, {"durability": "sometimes"}, strict=True)
    assert report["errors"] or [m for m in report["messages"] if m["severity"] >= 2]


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"products": {"replicas": 2}}, "replicas"),
        ({"durability": "sometimes"}, "durability"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"auth": {"publicKey": {"create": True}}}, "publicKey"),
        ({"auth": {"ordersToken": {"create": True, "value": "not a token!"}}}, "ordersToken"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        ({"orders": {"extraArgs": ["oops"]}}, "extraArgs"),
        # orders' HTTP client is built without TLS (reqwest, default features off)
        ({"orders": {"productsUrl": "https://products.example"}}, "productsUrl"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render(values)


def test_schema_accepts_the_durability_forms_the_store_parses() -> None:
    for durability in ("always", "never", "interval", "interval:250", "interval:250ms"):
        render({"durability": durability})


# --- rendering and Kubernetes schemas -----------------------------------------------------------


def test_defaults_render_the_core_objects_only() -> None:
    kinds = sorted(d["kind"] for d in manifests("defaults"))
    assert kinds == sorted(
        ["StatefulSet"] * 2 + ["Service"] * 4 + ["NetworkPolicy"] + ["PodDisruptionBudget"] * 2 + ["Pod"]
    )


def test_every_optional_feature_renders() -> None:
    docs = manifests("all-on")
    kinds = [d["kind"] for d in docs]
    for kind, count in [("Ingress", 1), ("ServiceMonitor", 1), ("Secret", 2), ("ConfigMap", 2),
                        ("NetworkPolicy", 1), ("PodDisruptionBudget", 2), ("StatefulSet", 2)]:
        assert kinds.count(kind) == count, kind
    off = [d["kind"] for d in manifests("all-off")]
    assert "NetworkPolicy" not in off and "PodDisruptionBudget" not in off


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_are_valid_kubernetes(scenario: str, version: str) -> None:
    checked = 0
    for doc in manifests(scenario):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: test_servicemonitor_shape checks it
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                        f"{'.'.join(map(str, e.path))}: {e.message}")
        checked += 1
    assert checked >= 7  # two StatefulSets, four Services and the test Pod at least


def test_servicemonitor_shape() -> None:
    docs = manifests("all-on")
    (sm,) = of_kind(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    spec = sm["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selected = [s for s in of_kind(docs, "Service") if selects(spec["selector"], s["metadata"]["labels"])]
    # The client Services of both services, not the headless ones (no double scrapes).
    assert sorted(s["metadata"]["name"] for s in selected) == [f"{RELEASE}-shop-orders", f"{RELEASE}-shop-products"]
    (endpoint,) = spec["endpoints"]
    assert endpoint["path"] == METRICS
    assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["interval"])
    for s in selected:
        assert endpoint["port"] in [p["name"] for p in s["spec"]["ports"]]


# --- the StatefulSets -----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("service", SERVICES)
def test_statefulset_is_a_single_writer_with_its_own_volume(scenario: str, service: str) -> None:
    docs = manifests(scenario)
    sts = statefulset(docs, service)
    spec = sts["spec"]
    assert spec["replicas"] == 1
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    c = container(sts)
    args = parse_args(c["args"], Help(service))
    data_dir = args["data-dir"]
    assert [m["mountPath"] for m in c["volumeMounts"] if m["name"] == claim["metadata"]["name"]] == [data_dir]
    # The governing Service exists and is headless.
    headless = by_name(docs, "Service")[spec["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(spec["selector"], spec["template"]["metadata"]["labels"])


def same_settings(service: str) -> dict[str, Any]:
    """Every per-service value set, the same for both services (the port apart)."""
    return {
        "port": {"products": 9081, "orders": 9082}[service],
        "workers": 2, "bodyLimit": 4096, "extraArgs": ["--workers=3"],
        "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "persistence": {"size": "5Gi", "storageClassName": "fast", "annotations": {"backup": "daily"}},
        "terminationGracePeriodSeconds": 40,
        "podAnnotations": {"team": "shop"}, "podLabels": {"tier": "backend"},
        "nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]}]}}]}},
    }


# Shared values off their defaults too, so that a template hard-coding a default stands out.
SAME_SETTINGS = {**copy.deepcopy(ALL_ON), "imagePullSecrets": [{"name": "registry"}],
                 "probes": {"startup": {"periodSeconds": 3, "failureThreshold": 100},
                            "liveness": {"timeoutSeconds": 3}, "readiness": {"failureThreshold": 3}},
                 **{s: same_settings(s) for s in SERVICES}}


def split_products_client(sts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The StatefulSet without what only a client of products needs (its URL, timeout and
    token), and those parts."""
    sts = copy.deepcopy(sts)
    template = sts["spec"]["template"]
    pod, c = template["spec"], container(sts)
    annotations = template["metadata"]["annotations"]
    token_volumes = [v for v in pod["volumes"]
                     if v.get("secret", {}).get("secretName") == f"{RELEASE}-shop-orders-token"]
    names = {v["name"] for v in token_volumes}
    parts = {
        "annotations": [k for k in annotations if k == "checksum/orders-token"],
        "args": [a for a in c["args"] if a.startswith("--products-")],
        "env": [e for e in c["env"] if e["name"].startswith("SHOP_PRODUCTS_")],
        "volumes": token_volumes,
        "mounts": [m for m in c["volumeMounts"] if m["name"] in names],
    }
    for k in parts["annotations"]:
        del annotations[k]
    c["args"] = [a for a in c["args"] if a not in parts["args"]]
    c["env"] = [e for e in c["env"] if e not in parts["env"]]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] not in names]
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] not in names]
    return sts, parts


def generic(doc: Any, service: str, port: int) -> Any:
    """A manifest with the service's name and port replaced by placeholders."""
    if isinstance(doc, dict):
        return {generic(k, service, port): generic(v, service, port) for k, v in doc.items()}
    if isinstance(doc, list):
        return [generic(v, service, port) for v in doc]
    if isinstance(doc, str):
        return re.sub(rf"\b{port}\b", "PORT", doc).replace(service, "SERVICE")
    return "PORT" if doc == port and not isinstance(doc, bool) else doc


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


# all-on gives the two services different settings; SAME_SETTINGS has every feature on too.
@pytest.mark.parametrize("values", [{}, ALL_OFF, SAME_SETTINGS], ids=["defaults", "all-off", "same-settings"])
def test_the_two_statefulsets_differ_only_in_orders_products_client(values: dict[str, Any]) -> None:
    # Both come from one template (_statefulset.tpl): probes, security contexts, volumes, the
    # claim template, scheduling... must stay the same, so a fix to one reaches the other.
    docs = manifests_of(render(values))
    shapes = {}
    for service in SERVICES:
        sts, parts = split_products_client(statefulset(docs, service))
        if service == "products":
            assert parts == {k: [] for k in parts}, f"products calls no service: {parts}"
            assert "orders-token" not in repr(sts)
        else:
            assert parts["annotations"] == ["checksum/orders-token"], "a new token rolls the pod"
            flags = dict(a[2:].split("=", 1) for a in parts["args"])
            assert set(flags) == {"products-url", "products-token-file"}
            assert [e["name"] for e in parts["env"]] == ["SHOP_PRODUCTS_TIMEOUT_MS"]
            (volume,), (mount,) = parts["volumes"], parts["mounts"]
            assert mount["mountPath"] == flags["products-token-file"].rpartition("/")[0]
            assert mount["readOnly"] is True and volume["secret"]["items"][0]["path"] == "products.token"
        # The rest is the same once the service's name and port are abstracted away.
        shapes[service] = generic(sts, service, container(sts)["ports"][0]["containerPort"])
        assert not re.search("products|orders", repr(shapes[service])), shapes[service]
    diff = differences(shapes["products"], shapes["orders"])
    assert not diff, "the StatefulSets drifted apart:\n" + "\n".join(diff)


@pytest.mark.parametrize("service", SERVICES)
def test_security_context_and_resources(service: str) -> None:
    sts = statefulset(manifests("defaults"), service)
    pod = sts["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["fsGroup"] == psc["runAsGroup"]
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    c = container(sts)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) >= {"cpu", "memory"}, kind
    # A read-only root: the only writable places are volumes.
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/data", "/tmp"}
    # The image runs as the user the Dockerfile sets.
    assert f"USER {psc['runAsUser']}:{psc['runAsGroup']}" in (REPO / "Dockerfile").read_text()


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("service", SERVICES)
def test_probes_use_the_health_endpoints(scenario: str, service: str) -> None:
    c = container(statefulset(manifests(scenario), service))
    port_names = {p["name"] for p in c["ports"]}
    expected = {"startupProbe": HEALTH, "livenessProbe": HEALTH, "readinessProbe": READY}
    for probe, path in expected.items():
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in port_names, probe
    # Liveness does not start before the store has loaded: the startup probe allows minutes.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("service", SERVICES)
def test_probe_and_metrics_paths_are_routes_of_the_service(service: str) -> None:
    # The shared routes are defined once in service-kit's bootstrap, which each service's startup
    # binds through.
    startup = (REPO / service / "src" / "startup.rs").read_text()
    assert "server::bind(" in startup, f"{service} does not bind through service_kit::server"
    source = (REPO / "service-kit" / "src" / "server.rs").read_text()
    assert "shared.configure(cfg)" in source, "the bootstrap does not add the shared routes"
    routes = set(re.findall(r'\.route\(\s*"([^"]+)"\s*,\s*web::get\(\)', source))
    assert {HEALTH, READY, METRICS} <= routes, routes


# --- no drift from the binaries ------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("service", SERVICES)
def test_command_flags_and_env_are_what_the_binary_accepts(scenario: str, service: str) -> None:
    h = Help(service)
    c = container(statefulset(manifests(scenario), service))
    assert c["command"] == [f"/usr/local/bin/{service}"]
    args = parse_args(c["args"], h)  # every flag exists and is used the way --help says
    env = [e["name"] for e in c["env"]]
    assert len(env) == len(set(env)), f"duplicate environment variables: {env}"
    for name in env:
        if name.startswith("SHOP_"):
            assert name in h.env_names, f"{name} is not in `{service} --help`"
        else:
            assert name in NON_SHOP_ENV, f"{name} is not something {service} reads"
    # No setting is given both as a flag and as its variable (which one wins is not obvious).
    for flag in args:
        assert h.env.get(flag) not in env, f"--{flag} and {h.env.get(flag)} both set"
    # Everything the binary requires is given.
    given = set(args) | {flag for flag, var in h.env.items() if var in env}
    assert h.required <= given, f"required by {service}: {h.required - given}"
    # An env var that --help lists takes a value clap accepts: checked by
    # test_rendered_command_lines_run_the_real_services.


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ports_match_listen_addresses_and_services(scenario: str) -> None:
    docs = manifests(scenario)
    services = by_name(docs, "Service")
    for service in SERVICES:
        h = Help(service)
        c = container(statefulset(docs, service))
        listen = parse_args(c["args"], h)["listen"]
        host, _, port = listen.rpartition(":")
        assert host == "0.0.0.0", "in a container the service must listen on all interfaces"
        (cport,) = c["ports"]
        assert cport["containerPort"] == int(port)
        if scenario == "defaults":
            # The chart's default ports are the binaries' own defaults.
            assert port == h.default["listen"].rpartition(":")[2]
        svc = services[f"{RELEASE}-shop-{service}"]
        (sport,) = svc["spec"]["ports"]
        assert sport["targetPort"] in (cport["name"], cport["containerPort"])
        assert sport["port"] == cport["containerPort"]
    # Orders reaches products through products' Service on its port.
    orders_args = parse_args(container(statefulset(docs, "orders"))["args"], Help("orders"))
    m = re.fullmatch(r"http://([^:/]+):(\d+)/?", orders_args["products-url"])
    assert m, orders_args["products-url"]
    products_svc = services[m.group(1)]
    assert int(m.group(2)) in [p["port"] for p in products_svc["spec"]["ports"]]
    assert selects({"matchLabels": products_svc["spec"]["selector"]},
                   statefulset(docs, "products")["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_files_named_by_flags_are_mounted_from_the_right_objects(scenario: str) -> None:
    values = helm_values(scenario)
    docs = manifests(scenario)
    secret_for = {
        "public-key-file": (values["auth"]["publicKey"], f"{RELEASE}-shop-public-key"),
        "products-token-file": (values["auth"]["ordersToken"], f"{RELEASE}-shop-orders-token"),
    }
    created = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}
    configmaps = by_name(docs, "ConfigMap")
    for service in SERVICES:
        sts = statefulset(docs, service)
        c = container(sts)
        args = parse_args(c["args"], Help(service))
        volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        for flag, path in args.items():
            if not flag.endswith("-file"):
                continue
            directory, _, filename = path.rpartition("/")
            (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == directory]
            assert mount.get("readOnly") is True
            volume = volumes[mount["name"]]
            if flag == "revoked-tokens-file":
                cm = configmaps[volume["configMap"]["name"]]
                assert filename in cm["data"]
                assert cm["data"][filename].split() == values["auth"]["revokedTokens"]
                continue
            cfg, default_name = secret_for[flag]
            source = volume["secret"]
            assert source["secretName"] == (cfg["existingSecret"] or default_name)
            (item,) = source["items"]
            assert item == {"key": cfg["key"], "path": filename}
            if cfg["create"]:
                assert created[source["secretName"]]["stringData"][cfg["key"]] == cfg["value"]
        assert ("revoked-tokens-file" in args) == bool(values["auth"]["revokedTokens"])
    # Orders, and only orders, gets the token.
    assert "products-token-file" not in parse_args(container(statefulset(docs, "products"))["args"], Help("products"))


def helm_values(scenario: str) -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(SCENARIOS[scenario])


def pod_annotations(values: dict[str, Any], service: str) -> dict[str, str]:
    docs = manifests_of(render(values))
    return statefulset(docs, service)["spec"]["template"]["metadata"]["annotations"]


def test_changing_a_secret_or_the_revocation_list_rolls_the_pods_that_read_it() -> None:
    base = {"auth": {"publicKey": {"create": True, "value": PUBLIC_KEY},
                     "ordersToken": {"create": True, "value": ORDERS_TOKEN}}}
    new_key = copy.deepcopy(base)
    new_key["auth"]["publicKey"]["value"] = "ed25519/" + "cd" * 32
    new_token = copy.deepcopy(base)
    new_token["auth"]["ordersToken"]["value"] = ORDERS_TOKEN + "x"
    revoked = copy.deepcopy(base)
    revoked["auth"]["revokedTokens"] = ["deadbeef"]
    for service, change, rolls in [
        ("products", new_key, True), ("orders", new_key, True),
        ("products", new_token, False), ("orders", new_token, True),
        ("products", revoked, True), ("orders", revoked, True),
    ]:
        before, after = pod_annotations(base, service), pod_annotations(change, service)
        assert (before != after) == rolls, (service, change)
    assert pod_annotations(base, "orders") == pod_annotations(copy.deepcopy(base), "orders")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_network_policy_lets_only_orders_reach_products(scenario: str) -> None:
    docs = manifests(scenario)
    policies = of_kind(docs, "NetworkPolicy")
    if scenario == "all-off":
        assert policies == []
        return
    (np,) = policies
    labels = {s: statefulset(docs, s)["spec"]["template"]["metadata"]["labels"] for s in SERVICES}
    assert selects(np["spec"]["podSelector"], labels["products"])
    assert not selects(np["spec"]["podSelector"], labels["orders"])
    assert np["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = np["spec"]["ingress"]
    products_ports = container(statefulset(docs, "products"))["ports"]
    assert [p["port"] for p in rule["ports"]] == [p["name"] for p in products_ports]
    peers = rule["from"]
    pod_peers = [p["podSelector"] for p in peers if set(p) == {"podSelector"}]
    (test_pod,) = [d for d in of_kind(docs, "Pod")]
    assert any(selects(s, labels["orders"]) for s in pod_peers)
    assert any(selects(s, test_pod["metadata"]["labels"]) for s in pod_peers)
    namespace_peers = [p for p in peers if "namespaceSelector" in p]
    if scenario == "defaults":
        # Nothing but orders and the test pod: no namespace-wide or empty (match-all) peer.
        assert len(peers) == 2 and namespace_peers == []
    else:
        selectors = [p["namespaceSelector"]["matchLabels"] for p in namespace_peers]
        assert {"kubernetes.io/metadata.name": "ingress-nginx"} in selectors
        assert {"kubernetes.io/metadata.name": "monitoring"} in selectors
    for p in peers:
        assert all(p[k] for k in p), f"an empty selector would admit everything: {p}"


@pytest.mark.parametrize("scenario", ["defaults", "all-on"])
def test_pdb_covers_each_single_pod(scenario: str) -> None:
    docs = manifests(scenario)
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert len(pdbs) == 2
    for service in SERVICES:
        labels = statefulset(docs, service)["spec"]["template"]["metadata"]["labels"]
        (pdb,) = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert pdb["spec"]["minAvailable"] == 1
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_ingress_routes_products_and_orders_on_one_host() -> None:
    docs = manifests("all-on")
    (ing,) = of_kind(docs, "Ingress")
    services = by_name(docs, "Service")
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "shop.example.com"
    routes = {p["path"]: p for p in rule["http"]["paths"]}
    assert set(routes) == {"/products", "/orders"}
    for service in SERVICES:
        backend = routes[f"/{service}"]["backend"]["service"]
        assert routes[f"/{service}"]["pathType"] == "Prefix"
        svc = services[backend["name"]]
        assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == service
        assert backend["port"]["name"] in [p["name"] for p in svc["spec"]["ports"]]
    assert ing["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": f"{RELEASE}-shop-tls"}]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_test_hook_gets_healthz_of_both_services(scenario: str) -> None:
    docs = manifests(scenario)
    (pod,) = of_kind(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    services = by_name(docs, "Service")
    urls = [c["command"][-1] for c in pod["spec"]["containers"]]
    assert len(urls) == 2
    reached = set()
    for url in urls:
        m = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
        assert m, url
        svc = services[m.group(1)]
        assert int(m.group(2)) in [p["port"] for p in svc["spec"]["ports"]]
        assert m.group(3) == HEALTH
        reached.add(svc["metadata"]["labels"]["app.kubernetes.io/component"])
    assert reached == set(SERVICES)
    for c in pod["spec"]["containers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("service", SERVICES)
def test_grace_period_covers_the_services_own_shutdown_timeout(service: str) -> None:
    # Every service binds through the one bootstrap, which sets the forced-stop timeout.
    assert "server::bind(" in (REPO / service / "src" / "startup.rs").read_text()
    source = (REPO / "service-kit" / "src" / "server.rs").read_text()
    (timeout,) = re.findall(r"\.shutdown_timeout\((\d+)\)", source)
    grace = statefulset(manifests("defaults"), service)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= int(timeout) + 5


# --- NOTES.txt, Dockerfile, compose.yaml ---------------------------------------------------------


def shop_commands(text: str) -> list[list[str]]:
    """The `shop ...` command lines in a text (backslash continuations joined, output redirects cut)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        line = line.strip().split(" > ")[0].split(" || ")[-1]
        line = re.sub(r"^[A-Z_]+=\$\((.*)\)$", r"\1", line)  # VAR=$(shop ...)
        words = shlex.split(line) if line.startswith("shop ") else []
        if words[1:2] and words[1] in ("up", "keygen", "token"):
            commands.append(words)
    return commands


def check_shop_command(words: list[str]) -> None:
    assert words[0] == "shop"
    i = 1
    while i < len(words) and not words[i].startswith("-"):
        i += 1
    subcommand = words[1:i]
    assert subcommand, words
    h = Help("shop", *subcommand)
    parse_args(words[i:], h)
    assert h.required <= {w[2:].partition("=")[0] for w in words[i:] if w.startswith("--")}, words


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_notes_tell_how_to_mint_tokens_with_flags_shop_accepts(scenario: str) -> None:
    text = notes(scenario)
    commands = shop_commands(text)
    assert any(c[:3] == ["shop", "token", "mint"] for c in commands)
    # The client token of the "try it" step may do what that step does (GET /orders).
    (client,) = [c for c in commands if "alice" in c]
    assert "orders:read" in client, client
    for words in commands:
        check_shop_command(words)
    docs = manifests(scenario)
    # The kubectl commands create the Secrets under the names and keys the pods mount.
    for service in SERVICES:
        for v in statefulset(docs, service)["spec"]["template"]["spec"]["volumes"]:
            if "secret" in v:
                name, (item,) = v["secret"]["secretName"], v["secret"]["items"]
                created = {s["metadata"]["name"] for s in of_kind(docs, "Secret")}
                if name not in created:
                    assert re.search(rf"create secret generic {re.escape(name)} \\\n\s+--from-file={re.escape(item['key'])}=", text), name


DOCKERFILE_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word, rest.strip()))
    return out


def test_dockerfile_is_well_formed() -> None:
    instructions = dockerfile_instructions()
    assert {i for i, _ in instructions} <= DOCKERFILE_INSTRUCTIONS
    stages = [re.fullmatch(r"(?:--\S+ )*(\S+) AS (\S+)", rest, re.I) for i, rest in instructions if i == "FROM"]
    assert all(stages), "every stage is named"
    names = [m.group(2) for m in stages]
    assert len(names) == len(set(names))
    for i, rest in instructions:
        for ref in re.findall(r"--from=(\S+)", rest):
            assert ref in names, f"COPY --from={ref}: no such stage"
        if i in ("CMD", "ENTRYPOINT"):
            assert rest.startswith("["), f"{i} in exec form (the runtime image has no shell)"
    # The last stage (the default target) runs as the non-root user the chart expects.
    last_from = max(n for n, (i, _) in enumerate(instructions) if i == "FROM")
    users = [rest for i, rest in instructions[last_from:] if i == "USER"]
    assert users and not users[-1].startswith(("0", "root"))


def test_dockerfile_matches_the_chart() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    expose = re.findall(r"^EXPOSE (.+)$", dockerfile, re.M)
    assert len(expose) == 1
    docs = manifests("defaults")
    ports = {str(container(statefulset(docs, s))["ports"][0]["containerPort"]) for s in SERVICES}
    assert set(expose[0].split()) == ports
    # The services, the launcher, and the store CLI for the README's operations.
    for name in ("products", "orders", "shop", "store-actor"):
        assert f"target/release/{name}" in dockerfile
    assert "/usr/local/bin/" in dockerfile
    # The final stage (the default target) is the runtime one, without a shell.
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", dockerfile, re.M)
    assert stages[-1][1] == "runtime" and "debug" not in stages[-1][0]
    assert "SHELL" not in dockerfile


def test_compose_runs_the_services_with_flags_they_accept() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    stages = {m.group(1) for m in re.finditer(r"^FROM \S+ AS (\S+)$", (REPO / "Dockerfile").read_text(), re.M)}
    for name, spec in services.items():
        assert spec["build"]["target"] in stages, name
    for name in compose["volumes"]:
        assert any(v.startswith(f"{name}:") for spec in services.values() for v in spec.get("volumes", [])), name
    assert set(services) >= {"keys", *SERVICES}
    for service in SERVICES:
        spec = services[service]
        command = spec["command"]
        assert command[0] == service
        h = Help(service)
        args = parse_args(command[1:], h)
        given = set(args) | {f for f, var in h.env.items() if var in spec.get("environment", {})}
        assert h.required <= given
        for name in spec.get("environment", {}):
            assert name in h.env_names, name
        port = args["listen"].rpartition(":")[2]
        assert f"{port}:{port}" in spec["ports"]
        assert spec["depends_on"]["keys"]["condition"] == "service_completed_successfully"
        assert any(v.startswith("keys:") and v.endswith(":ro") for v in spec["volumes"])
        assert args["data-dir"] in [v.split(":")[1] for v in spec["volumes"]]
    orders = parse_args(services["orders"]["command"][1:], Help("orders"))
    products_port = parse_args(services["products"]["command"][1:], Help("products"))["listen"].rpartition(":")[2]
    assert orders["products-url"] == f"http://products:{products_port}"
    script = "\n".join(services["keys"]["command"])
    commands = shop_commands(script)
    assert [c[:3] for c in commands] == [["shop", "keygen", "--out"], ["shop", "token", "mint"], ["shop", "token", "mint"]]
    for words in commands:
        check_shop_command(words)
    # The files the services read are the ones the keys service writes.
    keys_dir = commands[0][3]
    assert parse_args(services["products"]["command"][1:], Help("products"))["public-key-file"] == f"{keys_dir}/public.key"
    assert f"> {orders['products-token-file']}" in script


# --- the rendered command lines, run for real ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def wait_for(url: str, status: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            last = get(url)[0]
            if last == status:
                return
        except OSError as e:
            last = e
        time.sleep(0.1)
    pytest.fail(f"{url} never answered {status} (last: {last}):\n{log.read_text()}")


def dashboard_metrics(configmaps: dict[str, dict[str, str]]) -> set[str]:
    """The metric names the rendered Grafana dashboard's queries use (label names have no
    underscore; `histogram_quantile` is the one function that has). That the services export
    each is checked end to end, with traffic, in integration-tests (e2e.rs)."""
    (data,) = [d for name, d in configmaps.items() if name.endswith("-dashboard")]
    dashboard = json.loads(data["shop.json"])
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r'"[^"]*"', "", target["expr"])  # label values
            names.update(t for t in re.findall(r"[a-z_][a-z0-9_]*", expr) if "_" in t)
    return names - {"histogram_quantile"}


def test_grafana_dashboard_is_off_by_default_and_a_labelled_configmap_when_on() -> None:
    assert not [c for c in of_kind(manifests("defaults"), "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    (cm,) = [c for c in of_kind(manifests("all-on"), "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["shop.json"])
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ["requests", "errors", "latency", "store size", "fsync", "feed lag", "circuit"]:
        assert topic in titles, topic
    assert len(dashboard_metrics({"x-dashboard": cm["data"]})) >= 10


def test_rendered_command_lines_run_the_real_services(tmp_path: Path) -> None:
    """Runs each rendered container's command, args and env, with its volumes as local
    directories and its addresses on free loopback ports; both answer the probe paths and
    /metrics, and stop cleanly on SIGTERM within the pod's grace period."""
    shop = binary("shop")
    keys = tmp_path / "keys"
    subprocess.run([shop, "keygen", "--out", keys], check=True, capture_output=True, timeout=60)
    public_key = (keys / "public.key").read_text()
    token = subprocess.run(
        [shop, "token", "mint", "--private-key", keys / "private.key", "--user", "orders-service",
         "--right", "products:read"], check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    values = copy.deepcopy(ALL_ON)
    values["auth"]["publicKey"]["value"] = public_key.strip()
    values["auth"]["ordersToken"]["value"] = token
    docs = manifests_of(render(values))
    secrets = {s["metadata"]["name"]: s["stringData"] for s in of_kind(docs, "Secret")}
    configmaps = {c["metadata"]["name"]: c["data"] for c in of_kind(docs, "ConfigMap")}
    services = by_name(docs, "Service")
    ports = {s: free_port() for s in SERVICES}

    def local(text: str, service: str, mounts: dict[str, Path]) -> str:
        # One pass, so that a replaced path is never rewritten again.
        paths = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        text = re.sub(rf"(?<![\w/])({paths})(?=/|$)", lambda m: str(mounts[m.group(1)]), text)
        text = re.sub(r"0\.0\.0\.0:\d+", f"127.0.0.1:{ports[service]}", text)
        for name, svc in services.items():
            component = svc["metadata"]["labels"]["app.kubernetes.io/component"]
            if component in ports:
                text = text.replace(f"http://{name}:{svc['spec']['ports'][0]['port']}",
                                    f"http://127.0.0.1:{ports[component]}")
        return text

    procs: dict[str, tuple[subprocess.Popen[bytes], Path, int]] = {}
    try:
        for service in SERVICES:  # products first: orders follows its change feed
            sts = statefulset(docs, service)
            pod = sts["spec"]["template"]["spec"]
            c = container(sts)
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts: dict[str, Path] = {}
            for m in c["volumeMounts"]:
                where = tmp_path / service / m["name"]
                where.mkdir(parents=True)
                mounts[m["mountPath"]] = where
                volume = volumes.get(m["name"], {})
                if "secret" in volume:
                    data = secrets[volume["secret"]["secretName"]]
                    for item in volume["secret"]["items"]:
                        (where / item["path"]).write_text(data[item["key"]])
                elif "configMap" in volume:
                    for key, text in configmaps[volume["configMap"]["name"]].items():
                        (where / key).write_text(text)
            assert tmp_path / service / "data" in mounts.values()
            command = [str(BIN_DIR / Path(c["command"][0]).name)] + [local(a, service, mounts) for a in c["args"]]
            env = {e["name"]: local(e["value"], service, mounts) for e in c["env"]}
            # Every path must be inside a volume: in the pod nothing else is writable, and here the
            # run must not touch anything outside its temporary directory.
            for value in [*command[1:], *env.values()]:
                for path in re.findall(r"(?:^|=)(/[^\s,]*)", value):
                    assert path.startswith(str(tmp_path)), f"{value!r} is outside the pod's volumes"
            env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
            log = tmp_path / f"{service}.log"
            proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT)
            procs[service] = (proc, log, pod["terminationGracePeriodSeconds"])
            wait_for(f"http://127.0.0.1:{ports[service]}{HEALTH}", 200, proc, log)

        for service in SERVICES:
            proc, log, _ = procs[service]
            base = f"http://127.0.0.1:{ports[service]}"
            # Orders is ready only when it reaches products with its token: the wiring works.
            wait_for(f"{base}{READY}", 200, proc, log, seconds=30)
            status, content_type, body = get(f"{base}{METRICS}")
            assert status == 200 and content_type.startswith(("text/plain", "application/openmetrics-text"))
            assert "# TYPE" in body or "# HELP" in body

            assert get(f"{base}/{service}")[0] == 401, "data endpoints need a token"

        for service in reversed(SERVICES):
            proc, log, grace = procs[service]
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{service} did not stop within terminationGracePeriodSeconds={grace}")
            assert code == 0, log.read_text()
            assert time.monotonic() - started < grace
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_reservation_ttl_reaches_products_only_when_set() -> None:
    def env(scenario: str, service: str) -> dict[str, str]:
        c = statefulset(manifests(scenario), service)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in c.get("env", [])}

    assert env("all-on", "products")["SHOP_RESERVATION_TTL"] == "2m"
    assert "SHOP_RESERVATION_TTL" not in env("defaults", "products")
    assert "SHOP_RESERVATION_TTL" not in env("all-on", "orders")


def test_the_readme_install_renders_with_the_secrets_and_image_it_creates() -> None:
    """The README's Kubernetes block: its `helm install --set` flags render, the pods use the
    image it pushes and mount the Secrets it creates, and it port-forwards a Service that
    exists."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- k8s:start", 1)[1].split("<!-- k8s:end", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    (install,) = [l for l in joined.splitlines() if l.startswith("helm install ")]
    values: dict[str, Any] = {}
    for pair in re.findall(r"--set (\S+)", install):
        key, _, value = pair.partition("=")
        node = values
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    release, namespace = install.split()[2], re.search(r" -n (\S+)", install).group(1)
    with helm.Chart.load(CHART) as chart:
        docs = manifests_of(chart.render(values, name=release, namespace=namespace, is_install=True))
    created = set(re.findall(r"create secret generic (\S+)", joined))
    for service in SERVICES:
        sts = statefulset(docs, service)
        assert container(sts)["image"] == "registry.example.com/shop:0.1.0"
        mounted = {v["secret"]["secretName"] for v in sts["spec"]["template"]["spec"]["volumes"] if "secret" in v}
        assert mounted <= created, (service, mounted, created)
    (forwarded,) = re.findall(r"port-forward svc/(\S+) ", joined)
    assert forwarded in by_name(docs, "Service")

