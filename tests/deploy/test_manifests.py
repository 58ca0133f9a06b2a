"""deploy/: the KubeRay manifests, the Dockerfiles and the Slurm script, as deploy/README.md
describes them. The manifests are read and checked against KubeRay v1's fields and against each
other (the ConfigMap the RayJob mounts, the Secret its pods read), and the config they carry goes
through crawl2model's own loader; the sbatch script runs on a stand-in Slurm; an image is built
only where a container engine runs and can pull the base image."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERAY = DEPLOY / "kuberay"
SBATCH = DEPLOY / "slurm" / "crawl2model.sbatch"
BIN = Path(sys.executable).parent

KUBERAY_FILES = ("raycluster.yaml", "rayjob.yaml", "configmap.yaml", "secret.example.yaml")
GCS_PORT = 6379  # KubeRay's default; the head must expose the port the workers join

# The fields KubeRay's v1 CRDs define (ray-operator/config/crd/bases/ray.io_rayclusters.yaml and
# ray.io_rayjobs.yaml, KubeRay 1.x): a misspelt field is dropped by the API server without a word.
RAYCLUSTER_SPEC = {"authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
                   "headGroupSpec", "headServiceAnnotations", "historyServerOptions", "managedBy", "networkPolicy",
                   "rayVersion", "suspend", "tlsOptions", "upgradeStrategy", "workerGroupSpecs"}
HEAD_GROUP = {"enableIngress", "headService", "ingressOptions", "labels", "rayStartParams", "resources",
              "serviceType", "template"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "labels", "maxReplicas", "minReplicas", "numOfHosts", "priority",
                "rayStartParams", "replicas", "resources", "scaleStrategy", "suspend", "template"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy", "entrypoint",
               "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId", "managedBy", "metadata",
               "preRunningDeadlineSeconds", "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes",
               "submissionMode", "submitterConfig", "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished"}
# The object store's settings the pods must get from the Secret (what s3fs/botocore read).
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")


# --- reading the manifests ---------------------------------------------------------------------------

def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> dict[str, list[dict]]:
    return {path.name: documents(path) for path in sorted(KUBERAY.glob("*.y*ml"))}


def one(kind: str) -> dict:
    found = [doc for docs in manifests().values() for doc in docs if doc.get("kind") == kind]
    assert len(found) == 1, f"deploy/kuberay/ should hold one {kind}, holds {len(found)}"
    return found[0]


def cluster_specs() -> dict[str, dict]:
    """The Ray clusters described: the RayCluster's spec and the RayJob's rayClusterSpec."""
    return {"RayCluster": one("RayCluster")["spec"], "RayJob.rayClusterSpec": one("RayJob")["spec"]["rayClusterSpec"]}


def ray_pods(spec: dict) -> dict[str, dict]:
    """Each pod template of a cluster spec: the head's and each worker group's."""
    pods = {"head": spec["headGroupSpec"]["template"]["spec"]}
    for group in spec["workerGroupSpecs"]:
        pods[f"worker group {group['groupName']}"] = group["template"]["spec"]
    return pods


def ray_container(pod: dict) -> dict:
    return pod["containers"][0]  # KubeRay runs Ray in the first container


def secret() -> dict:
    return one("Secret")


def secret_values(doc: dict) -> dict[str, str]:
    import base64

    values = dict(doc.get("stringData") or {})
    values.update({k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()})
    return values


def pod_env(container: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment Kubernetes gives `container` from `env` and `envFrom` (values from Secrets;
    `secrets` maps a Secret's name to its keys and values). A reference to an unknown Secret or key
    fails the test."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            assert name in secrets, f"envFrom names Secret '{name}'; deploy/kuberay/ defines {sorted(secrets)}"
            env.update({source.get("prefix", "") + k: v for k, v in secrets[name].items()})
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in (item.get("valueFrom") or {}):
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secrets, f"env {item['name']} names Secret '{ref['name']}'; defined: {sorted(secrets)}"
            assert ref["key"] in secrets[ref["name"]], f"env {item['name']}: Secret '{ref['name']}' has no key '{ref['key']}'"
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def config_mount(rayjob: dict) -> tuple[str, str, str]:
    """(the config file the entrypoint names, the ConfigMap holding it, its key there), found the
    way Kubernetes finds it: the head's volumeMount whose path holds the file, its volume, the key."""
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[:2] == ["pipeline", "run"], f"the RayJob's entrypoint should start `pipeline run`: {argv}"
    path = PurePosixPath(argv[2])
    assert path.is_absolute(), f"the entrypoint's config should be an absolute path in the pod: {path}"
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = [m for m in ray_container(head).get("volumeMounts") or [] if path.parent == PurePosixPath(m["mountPath"])]
    assert len(mounts) == 1, f"no volume of the head container is mounted at {path.parent} (the config's folder)"
    volume = next(v for v in head.get("volumes") or [] if v["name"] == mounts[0]["name"])
    assert "configMap" in volume, f"the volume at {path.parent} should be a ConfigMap: {volume}"
    items = volume["configMap"].get("items")
    key = next((i["key"] for i in items if i["path"] == path.name), None) if items else path.name
    assert key is not None, f"the ConfigMap volume's items do not give the file {path.name}"
    return str(path), volume["configMap"]["name"], key


def run_config_text() -> str:
    _, name, key = config_mount(one("RayJob"))
    configmap = one("ConfigMap")
    assert configmap["metadata"]["name"] == name, f"the RayJob mounts ConfigMap '{name}'; configmap.yaml defines " \
                                                  f"'{configmap['metadata']['name']}'"
    assert key in configmap.get("data", {}), f"ConfigMap '{name}' has no key '{key}' (the file the RayJob runs)"
    return configmap["data"][key]


def dockerfile_arg(path: Path, name: str) -> str:
    found = [i.args.split("=", 1)[1] for i in instructions(path) if i.op == "ARG" and i.args.startswith(f"{name}=")]
    assert found, f"{path.name} has no `ARG {name}=...`"
    return found[0]


# --- the Kubernetes objects ----------------------------------------------------------------------------

def test_the_kuberay_files_are_there():
    missing = set(KUBERAY_FILES) - {p.name for p in KUBERAY.glob("*.y*ml")}
    assert not missing, f"deploy/kuberay/ lacks {sorted(missing)}"


@pytest.mark.parametrize("name", KUBERAY_FILES)
def test_every_manifest_is_a_well_formed_object(name):
    docs = documents(KUBERAY / name)
    assert docs, f"{name} holds no object"
    for doc in docs:
        assert isinstance(doc, dict), f"{name}: a document that is not a mapping"
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], f"{name}: no apiVersion"
        assert isinstance(doc.get("kind"), str) and doc["kind"], f"{name}: no kind"
        metadata = doc.get("metadata")
        assert isinstance(metadata, dict) and isinstance(metadata.get("name"), str), f"{name}: no metadata.name"
        # DNS-1035 label: KubeRay names services and pods after it (and RayJob's cluster adds 6 characters)
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,45}[a-z0-9])?", metadata["name"]), \
            f"{name}: metadata.name '{metadata['name']}' is not a short DNS-1035 label"
        if doc["kind"] in ("RayCluster", "RayJob"):
            assert doc["apiVersion"] == "ray.io/v1", f"{name}: {doc['kind']} should be ray.io/v1"
        else:
            assert doc["apiVersion"] == "v1", f"{name}: {doc['kind']} is a core object, apiVersion v1"


def test_only_kuberay_v1_fields():
    rayjob = one("RayJob")["spec"]
    assert set(rayjob) <= RAYJOB_SPEC, f"RayJob: unknown fields {sorted(set(rayjob) - RAYJOB_SPEC)}"
    for where, spec in cluster_specs().items():
        assert set(spec) <= RAYCLUSTER_SPEC, f"{where}: unknown fields {sorted(set(spec) - RAYCLUSTER_SPEC)}"
        head = spec["headGroupSpec"]
        assert set(head) <= HEAD_GROUP, f"{where}.headGroupSpec: unknown fields {sorted(set(head) - HEAD_GROUP)}"
        for group in spec["workerGroupSpecs"]:
            assert set(group) <= WORKER_GROUP, \
                f"{where}.workerGroupSpecs: unknown fields {sorted(set(group) - WORKER_GROUP)}"


@pytest.mark.parametrize("where", ["RayCluster", "RayJob.rayClusterSpec"])
def test_ray_cluster(where):
    spec = cluster_specs()[where]
    ray_version = dockerfile_arg(DEPLOY / "Dockerfile", "RAY_VERSION")
    assert spec.get("rayVersion") == ray_version, \
        f"{where}.rayVersion {spec.get('rayVersion')!r} should be the image's Ray, {ray_version} (deploy/Dockerfile)"

    head = spec["headGroupSpec"]
    params = head.get("rayStartParams")
    assert isinstance(params, dict), f"{where}.headGroupSpec: no rayStartParams"
    containers = head["template"]["spec"]["containers"]
    assert containers, f"{where}: the head's pod template has no container"
    ports = {p["containerPort"]: p.get("name") for p in ray_container(head["template"]["spec"]).get("ports", [])}
    gcs = int(params.get("port", GCS_PORT))
    assert gcs in ports, f"{where}: the head container does not expose the GCS port {gcs} (ports: {ports})"

    groups = spec.get("workerGroupSpecs")
    assert isinstance(groups, list) and groups, f"{where}: no workerGroupSpecs"
    for group in groups:
        assert isinstance(group.get("groupName"), str) and group["groupName"], f"{where}: a worker group without groupName"
        counts = {k: group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()), \
            f"{where}: worker group {group['groupName']}: replicas, minReplicas, maxReplicas must be integers: {counts}"
        assert 0 <= counts["minReplicas"] <= counts["replicas"] <= counts["maxReplicas"], \
            f"{where}: worker group {group['groupName']}: needs 0 <= minReplicas <= replicas <= maxReplicas: {counts}"
        assert isinstance(group.get("rayStartParams"), dict), f"{where}: worker group {group['groupName']}: no rayStartParams"

    for group in [head, *groups]:
        for key, value in group["rayStartParams"].items():  # map[string]string in the CRD: `num-cpus: 0` is refused
            assert isinstance(value, str), f"{where}: rayStartParams.{key} must be a string (quote it): {value!r}"
        if group.get("resources"):  # KubeRay refuses resources given both ways
            assert not {"num-cpus", "num-gpus", "memory", "resources"} & set(group["rayStartParams"]), \
                f"{where}: resources both in rayStartParams and in the group's resources"

    images = {name: ray_container(pod).get("image") for name, pod in ray_pods(spec).items()}
    for name, image in images.items():
        assert isinstance(image, str) and image, f"{where}: the {name} container has no image"
        repository = image.rsplit("@", 1)[0]
        repository = repository.rsplit(":", 1)[0] if ":" in repository.rsplit("/", 1)[-1] else repository
        assert repository.rsplit("/", 1)[-1] == "crawl2model", \
            f"{where}: the {name} container should run the image of deploy/Dockerfile (…/crawl2model:TAG): {image}"
        resources = ray_container(ray_pods(spec)[name]).get("resources", {})
        assert resources.get("limits", {}).get("cpu") and resources.get("limits", {}).get("memory"), \
            f"{where}: the {name} container should set CPU and memory limits (KubeRay sizes Ray from them)"
    assert len(set(images.values())) == 1, f"{where}: head and workers should run one image: {images}"


def test_rayjob_runs_the_pipeline_on_the_mounted_config():
    rayjob = one("RayJob")
    spec = rayjob["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["pipeline", "run"], f"the entrypoint should start `pipeline run`: {spec['entrypoint']}"
    assert "--address" in argv and argv[argv.index("--address") + 1] == "auto", \
        f"the entrypoint should join the RayJob's cluster (--address auto): {spec['entrypoint']}"
    path, name, key = config_mount(rayjob)
    assert path.endswith(".yaml")
    run_config_text()  # the ConfigMap mounted exists in configmap.yaml and holds the file
    assert "clusterSelector" not in spec and spec.get("rayClusterSpec"), "the RayJob should bring its own cluster"
    assert spec.get("shutdownAfterJobFinishes") is True, "the RayJob's cluster should go when the run ends"
    ttl = spec.get("ttlSecondsAfterFinished")
    assert isinstance(ttl, int) and ttl >= 0, f"ttlSecondsAfterFinished should be a non-negative integer: {ttl!r}"


def test_the_config_in_the_configmap_is_valid():
    """Its schema and every stage's options, as the loader checks them (no object store needed:
    the next test lists the inputs too)."""
    from crawl2model.catalog import resolve_stage
    from crawl2model.pipeline.config import RunConfig

    raw = yaml.safe_load(run_config_text())
    config = RunConfig.model_validate(raw)
    assert config.output_dir.startswith("s3://"), f"output_dir should be on the object store: {config.output_dir}"
    inputs = config.input.warc + config.input.jsonl + config.input.parquet
    assert inputs and all(p.startswith("s3://") for p in inputs), f"the inputs should be on the object store: {inputs}"
    assert config.stages, "the config has no stages"
    for entry in config.stages:
        cls = resolve_stage(entry.type)
        options = entry.options()
        if "seed" in cls.Config.model_fields and options.get("seed") is None:
            options["seed"] = config.seed
        cls.Config.model_validate(options)


def test_the_config_parses_on_an_object_store_with_the_secrets_environment(object_store, monkeypatch):
    """crawl2model's whole config check (inputs listed, stages bound, columns followed), on a real
    S3 server reached only through the environment the head pod gets from the Secret: the
    Secret's keys filled in with the server's settings."""
    import fsspec.config
    import s3fs

    from crawl2model.catalog import parse_config

    text = run_config_text()
    raw = yaml.safe_load(text)
    server = {"AWS_ACCESS_KEY_ID": object_store["options"]["key"],
              "AWS_SECRET_ACCESS_KEY": object_store["options"]["secret"],
              "AWS_ENDPOINT_URL": object_store["options"]["endpoint_url"]}
    doc = secret()
    unknown = set(secret_values(doc)) - set(server)
    assert not unknown, f"the Secret holds keys this test cannot fill: {sorted(unknown)}"
    filled = {doc["metadata"]["name"]: {k: server[k] for k in secret_values(doc)}}
    head = one("RayJob")["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    env = pod_env(ray_container(head), filled)

    fs = object_store["fs"]  # the server, as the fixture configured it: put the inputs the config names
    for pattern in raw["input"].get("warc", []) + raw["input"].get("jsonl", []) + raw["input"].get("parquet", []):
        path = pattern.removeprefix("s3://").replace("*", "part-00000")
        bucket = path.split("/", 1)[0]
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        fs.pipe(path, b"")

    for name in [n for n in os.environ if n.startswith(("AWS_", "FSSPEC_S3"))]:
        monkeypatch.delenv(name)
    monkeypatch.setitem(fsspec.config.conf, "s3", {})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        config, nodes = parse_config(raw, source="deploy/kuberay/configmap.yaml: crawl.yaml")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert [n.name for n in nodes] == [s["name"] for s in raw["stages"]]


def test_every_secret_reference_names_the_example_secret():
    name = secret()["metadata"]["name"]
    keys = set(secret_values(secret()))
    refs = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("secretRef", "secretKeyRef"):
                    refs.append((where, key, value))
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for file, docs in manifests().items():
        for doc in docs:
            walk(doc, f"{file}:{doc['kind']}")
    assert refs, "no manifest reads the Secret"
    for where, kind, ref in refs:
        assert ref.get("name") == name, f"{where}.{kind} names Secret '{ref.get('name')}', not '{name}'"
        if kind == "secretKeyRef":
            assert ref.get("key") in keys, f"{where}: Secret '{name}' has no key '{ref.get('key')}'"

    secrets = {name: secret_values(secret())}
    for where, spec in cluster_specs().items():
        for pod, template in ray_pods(spec).items():
            env = pod_env(ray_container(template), secrets)
            missing = [v for v in CREDENTIALS if v not in env]
            assert not missing, f"{where}: the {pod} container does not get {missing} from the Secret"


def test_the_secret_is_a_template():
    doc = secret()
    assert doc.get("type", "Opaque") == "Opaque"
    assert set(CREDENTIALS) <= set(secret_values(doc)), f"the Secret should hold {CREDENTIALS}"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "REPLACE" in secret_values(doc)[key], f"secret.example.yaml: {key} should be a placeholder"
    assert secret_values(doc)["AWS_ENDPOINT_URL"].startswith(("http://", "https://"))


# --- the Dockerfiles --------------------------------------------------------------------------------

class Instruction:
    def __init__(self, op: str, args: str):
        self.op, self.args = op, args

    def __repr__(self):
        return f"{self.op} {self.args}"


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments left out."""
    found, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        op, _, args = current.strip().partition(" ")
        found.append(Instruction(op.upper(), " ".join(args.split())))
        current = ""
    return found


def expanded_runs(path: Path) -> list[str]:
    """RUN lines with the ARG defaults put in."""
    args = dict(i.args.split("=", 1) for i in instructions(path) if i.op == "ARG" and "=" in i.args)
    runs = []
    for i in instructions(path):
        if i.op == "RUN":
            runs.append(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), i.args))
    return runs


def pip_installs(run: str) -> list[list[str]]:
    """The arguments of each `pip install` in a shell line."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, command = [], []
    for token in lexer:
        if token in (";", "&&", "||", "|", "&"):
            commands.append(command)
            command = []
        else:
            command.append(token)
    commands.append(command)
    return [c[c.index("install") + 1:] for c in commands
            if "install" in c and any(w == "pip" or w.endswith("/pip") for w in c[:c.index("install")])]


def readme_torch() -> tuple[str, str]:
    """README's install line: (torch's pinned version, the CPU build's index)."""
    match = re.search(r"pip install torch==([\w.]+) --extra-index-url (\S+)", (ROOT / "README.md").read_text())
    assert match, "README's install line (pip install torch==... --extra-index-url ...) not found"
    return match[1], match[2]


def package_dirs() -> list[str]:
    """The top-level folders pyproject.toml builds crawl2model's packages from."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    dirs = set()
    for package in setuptools["packages"]:
        parts = package.split(".")
        prefix = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in mapped), None)
        folder = mapped[prefix] if prefix is not None else parts[0]  # a package under a mapped one lies in its folder
        dirs.add(PurePosixPath(folder).parts[0])
    return sorted(dirs)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_installs_torch_and_the_project(name):
    path = DEPLOY / name
    steps = instructions(path)
    ops = [s.op for s in steps]
    base = next(s.args for s in steps if s.op == "FROM")
    version, cpu_index = readme_torch()
    runs = expanded_runs(path)
    installs = [argv for run in runs for argv in pip_installs(run)]
    torch = [argv for argv in installs if f"torch=={version}" in argv]
    assert torch, f"{name}: no `pip install torch=={version}` (README's pin)"
    if name == "Dockerfile":
        assert base.startswith("python:3.11-slim"), f"{name}: the base should be Python 3.11 slim (Debian): {base}"
        first = torch[0]
        assert "--extra-index-url" in first and first[first.index("--extra-index-url") + 1] == cpu_index, \
            f"{name}: torch should come from PyTorch's CPU index as README's line does: {first}"
    else:
        assert base.startswith(("python:3.11", "nvidia/cuda:")), f"{name}: unexpected base {base}"
        assert not any("download.pytorch.org/whl/cpu" in run for run in runs), f"{name}: installs the CPU build"

    # the project: its source folders copied (all that pyproject.toml maps, and the README it names),
    # then `pip install` of the folder they were copied to
    copies = {}
    for step in steps:
        if step.op == "COPY":
            *sources, target = shlex.split(step.args)
            for source in sources:
                copies[source.rstrip("/")] = (steps.index(step), target)
    needed = [*package_dirs(), "README.md", "pyproject.toml"]
    missing = [d for d in needed if d not in copies]
    assert not missing, f"{name}: copies nothing of {missing} (pyproject.toml builds from them)"
    targets = {str(PurePosixPath(t if s in ("README.md", "pyproject.toml") else PurePosixPath(t).parent))
               for s, (_, t) in copies.items() if s in needed}
    assert len(targets) == 1, f"{name}: the source should be copied into one folder: {targets}"
    src = targets.pop()
    project_install = [run for run in runs
                       if re.search(rf"cd {re.escape(src)} && (\S+ -m )?pip install \.( |$)|pip install {re.escape(src)}/?( |$)", run)]
    assert project_install, f"{name}: no `pip install` of the project copied to {src}"

    # cache-friendly: pyproject.toml, then the dependencies, then the source
    run_steps = [i for i, s in enumerate(steps) if s.op == "RUN"]
    deps = [run_steps[i] for i, run in enumerate(runs) if "pyproject.toml" in run and pip_installs(run)]
    assert deps, f"{name}: no RUN that installs the dependencies read from pyproject.toml"
    first_source = min(copies[d][0] for d in package_dirs())
    assert copies["pyproject.toml"][0] < deps[0] < first_source, \
        f"{name}: copy pyproject.toml, install the dependencies, then copy the source (layer cache)"

    users = [s.args for s in steps if s.op == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{name}: should run as a non-root user"
    assert ops.index("USER") > max(run_steps), f"{name}: USER should come after the installs"
    entrypoint = [json.loads(s.args) for s in steps if s.op == "ENTRYPOINT"]
    assert entrypoint == [["pipeline"]], f"{name}: ENTRYPOINT should be [\"pipeline\"]: {entrypoint}"
    assert dockerfile_arg(path, "RAY_VERSION") == dockerfile_arg(DEPLOY / "Dockerfile", "RAY_VERSION"), \
        f"{name}: RAY_VERSION differs from deploy/Dockerfile's (the manifests' rayVersion)"


def test_dockerignore_keeps_the_context_small_and_the_source_in():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    normalised = {p.strip("/").removeprefix("**/") for p in patterns}
    for needed in ("runs", ".venv", ".git", "__pycache__", "*.egg-info"):
        assert needed in normalised, f".dockerignore should leave out {needed}"
    for source in [*package_dirs(), "README.md", "pyproject.toml"]:
        assert not any(re.fullmatch(p.strip("/").replace("*", ".*"), source) for p in normalised if p != "*.egg-info"), \
            f".dockerignore leaves out {source}, which the Dockerfiles copy"


def container_engine() -> str:
    engine = shutil.which("docker") or shutil.which("podman")
    if engine is None:
        pytest.skip("neither docker nor podman is installed: the image is not built here")
    info = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"{engine} is installed but does not run ({(info.stderr or info.stdout).strip()[:200]}): "
                    "the image is not built here")
    return engine


@pytest.mark.slow
def test_the_cpu_image_builds_and_runs():
    engine = container_engine()
    base = next(s.args for s in instructions(DEPLOY / "Dockerfile") if s.op == "FROM")
    qualified = base if "/" in base.split(":", 1)[0] else f"docker.io/library/{base}"  # podman wants a registry
    pull = subprocess.run([engine, "pull", qualified], capture_output=True, text=True, timeout=600)
    if pull.returncode != 0:
        pytest.skip(f"cannot pull the base image {base} ({pull.stderr.strip()[:200]}): the image is not built here")
    tag = f"crawl2model-test:{uuid.uuid4().hex[:8]}"
    build = subprocess.run([engine, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)],
                           capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        stages = subprocess.run([engine, "run", "--rm", tag, "stages"], capture_output=True, text=True, timeout=300)
        assert stages.returncode == 0 and "extract" in stages.stdout, stages.stderr[-2000:]
        probe = subprocess.run(
            [engine, "run", "--rm", "--entrypoint", "python", tag, "-c",
             "import os, torch, ray, crawl2model; print(os.getuid(), torch.__version__, ray.__version__)"],
            capture_output=True, text=True, timeout=300)
        uid, torch_version, ray_version = probe.stdout.split()
        assert uid != "0" and torch_version == f"{readme_torch()[0]}+cpu"
        assert ray_version == dockerfile_arg(DEPLOY / "Dockerfile", "RAY_VERSION")
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=300)


# --- Slurm ------------------------------------------------------------------------------------------

def test_the_sbatch_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_sbatch_directives_come_before_any_command():
    """sbatch stops reading #SBATCH lines at the first line that is not a comment."""
    lines = SBATCH.read_text().splitlines()
    assert lines[0].startswith("#!/bin/bash")
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert directives and max(directives) < first_command, \
        f"line {first_command + 1} is a command; the #SBATCH lines after it are ignored"
    assert any("--nodes" in lines[i] for i in directives)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
@pytest.mark.slow
def test_the_sbatch_script_runs_on_a_stand_in_allocation(tmp_path):
    """The script itself, with `srun` and `scontrol` standing in for Slurm's: two "nodes" on this
    machine (a Ray head and a worker, each an `srun` step in the background), the run, and Ray
    stopped at the end."""
    import psutil

    from crawl2model.pipeline.sample import write_sample_crawl

    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    (stand_ins / "srun").write_text(  # srun's options dropped, the command run here
        "#!/bin/bash\nwhile [[ $# -gt 0 && $1 == -* ]]; do case $1 in -w|-N|-n) shift 2;; *) shift;; esac; done\n"
        'exec "$@"\n')
    (stand_ins / "scontrol").write_text('#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && tr , "\\n" <<<"$3"\n')
    for stand_in in stand_ins.iterdir():
        stand_in.chmod(0o755)
    crawl = [str(p) for p in write_sample_crawl(tmp_path / "crawl", seed=3, documents=40, files=2)]
    config = tmp_path / "crawl.yaml"
    config.write_text(yaml.safe_dump({"name": "slurm", "output_dir": str(tmp_path / "out"),
                                      "input": {"warc": crawl, "docs_per_shard": 10},
                                      "stages": [{"name": "extract", "type": "extract"}]}))
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env.update({
        "PATH": f"{stand_ins}{os.pathsep}{BIN}{os.pathsep}{env.get('PATH', '')}",
        "SLURM_JOB_NODELIST": "localhost,localhost", "SLURM_CPUS_PER_TASK": "1",
        "RAY_HEAD_IP": "127.0.0.1", "RAY_PORT": str(free_port()), "RAY_WAIT_SECONDS": "120",
        # ports of their own, beside any other Ray on this machine; the head keeps its files here
        "RAY_HEAD_ARGS": f"--include-dashboard=false --temp-dir={temp_dir} --dashboard-agent-listen-port={free_port()}",
        "RAY_WORKER_ARGS": f"--dashboard-agent-listen-port={free_port()}",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2",
        "CRAWL2MODEL_VENV": str(tmp_path / "no-venv"),  # the venv of these tests, through PATH
    })
    process = subprocess.Popen(["bash", str(SBATCH), str(config), "--no-progress"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
        pytest.fail(f"the sbatch script did not finish within 300 s:\n{output[-4000:]}")
    finally:
        def ours():  # the processes of this cluster: its files, or its GCS address, on their command line
            marks = (temp_dir, f"127.0.0.1:{env['RAY_PORT']}")
            return [p for p in psutil.process_iter(["cmdline"])
                    if any(mark in " ".join(p.info["cmdline"] or []) for mark in marks)]

        deadline = time.time() + 30
        while ours() and time.time() < deadline:
            time.sleep(1)
        left = ours()
        for p in left:
            p.kill()
        drivers = sorted(p.name for p in Path(temp_dir).glob("session_*/logs/python-core-driver-*"))
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert process.returncode == 0, output[-4000:]
    assert "2 Ray nodes up, 2 CPUs" in output, output[-4000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stages"]["extract"]["docs_out"] > 20
    # the run was a driver of the script's cluster (its log is in the cluster's session), after the
    # script's own wait for the nodes, not an embedded Ray of its own
    assert len({name.rsplit("_", 1)[-1] for name in drivers}) >= 2, f"drivers of the cluster: {drivers}"
    assert "stopping Ray" in output
    assert not left, f"Ray processes left after the script ended: {[p.info['cmdline'][:3] for p in left]}"
