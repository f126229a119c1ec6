"""cluster/: the launcher template renders and passes Ray's own schema, the Serve config is
what ``serve build`` makes of the code, the job runtime env ships a small package, and the
Serve application builder refuses to run without its environment."""

from __future__ import annotations

import importlib.util
import ipaddress
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
ENV = {
    "TRIPWIRE_SSH_USER": "tripwire",
    "TRIPWIRE_SSH_KEY": "~/.ssh/tripwire_cluster",
    "TRIPWIRE_CLUSTER_ENV": "~/.tripwire/cluster.env",
    "RAY_AUTH_MODE": "token",
}


def _render_module():
    spec = importlib.util.spec_from_file_location("cluster_render", CLUSTER / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render_module()


def _rendered(env: dict[str, str] = ENV) -> dict:
    return yaml.safe_load(render.render((CLUSTER / "ray-cluster.yaml").read_text(), env))


# ---------------------------------------------------------------- launcher config, render.py

def test_rendered_launcher_config_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _rendered()
    validate_config(prepare_config(config))  # raises on anything Ray would refuse
    assert config["provider"]["type"] == "local"
    assert config["auth"] == {"ssh_user": "tripwire", "ssh_private_key": "~/.ssh/tripwire_cluster"}
    workers = config["provider"]["worker_ips"]
    assert config["min_workers"] == config["max_workers"] == len(workers)
    doc_net = ipaddress.ip_network("203.0.113.0/24")  # placeholders that route nowhere
    assert all(ipaddress.ip_address(ip) in doc_net
               for ip in [config["provider"]["head_ip"], *workers])
    assert config["file_mounts"]["~/.tripwire/env"] == "~/.tripwire/cluster.env"
    assert {".venv", "build", "data", ".git"} <= set(config["rsync_exclude"])


def test_start_commands_pin_ports_auth_mode_and_a_loopback_dashboard():
    config = _rendered({**ENV, "RAY_AUTH_MODE": "disabled"})
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    for cmd in (head, worker):
        assert "export RAY_AUTH_MODE=disabled" in cmd
        assert ". ~/.tripwire/env" in cmd  # secrets reach ray start's environment
        assert ". ~/tripwire/.venv/bin/activate" in cmd  # jobs' `python` is the project's
        for flag in ("--node-manager-port=6380", "--object-manager-port=6381",
                     "--min-worker-port=10002", "--max-worker-port=10999"):
            assert flag in cmd
    assert "--port=6379" in head and "--dashboard-host=127.0.0.1" in head
    assert "--address=$RAY_HEAD_IP:6379" in worker  # left for the launcher to fill
    assert any("make setup" in c for c in config["setup_commands"])


def test_render_refuses_missing_variables_and_names_them():
    env = {k: v for k, v in ENV.items() if k not in ("TRIPWIRE_SSH_KEY", "RAY_AUTH_MODE")}
    with pytest.raises(render.MissingVariables) as err:
        render.render((CLUSTER / "ray-cluster.yaml").read_text(), {**env, "RAY_AUTH_MODE": " "})
    assert err.value.names == ["TRIPWIRE_SSH_KEY", "RAY_AUTH_MODE"]
    assert "TRIPWIRE_SSH_KEY, RAY_AUTH_MODE" in str(err.value)


def test_render_rules_comments_shell_variables_and_unsafe_values():
    text = "# ${NOT_A_VAR} in a comment\nuser: ${USER_X}\ncmd: echo $HOME $RAY_HEAD_IP\n"
    assert render.render(text, {"USER_X": "ops"}) == (
        "# ${NOT_A_VAR} in a comment\nuser: ops\ncmd: echo $HOME $RAY_HEAD_IP\n")
    with pytest.raises(ValueError, match="USER_X="):
        render.render(text, {"USER_X": "ops\nevil: 1"})
    with pytest.raises(ValueError, match="RAY_AUTH_MODE must be one of token, disabled"):
        render.render("m: ${RAY_AUTH_MODE}\n", {"RAY_AUTH_MODE": "tokne"})


def test_render_cli_writes_nothing_when_refusing(tmp_path):
    out = tmp_path / "rendered.yaml"
    env = {"PATH": "/usr/bin:/bin", "TRIPWIRE_SSH_USER": "tripwire"}
    proc = subprocess.run([sys.executable, str(CLUSTER / "render.py"),
                           str(CLUSTER / "ray-cluster.yaml"), "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "TRIPWIRE_SSH_KEY, TRIPWIRE_CLUSTER_ENV, RAY_AUTH_MODE" in proc.stderr
    assert not out.exists()
    proc = subprocess.run([sys.executable, str(CLUSTER / "render.py"),
                           str(CLUSTER / "ray-cluster.yaml"), "-o", str(out)],
                          env={**env, **ENV}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "${" not in "".join(line for line in out.read_text().splitlines()
                               if not line.lstrip().startswith("#"))


# ---------------------------------------------------------------------------- Serve config

def _serve_config() -> dict:
    return yaml.safe_load((CLUSTER / "serve-config.yaml").read_text())


def test_serve_config_loads_with_serves_schema_and_listens_on_loopback():
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(_serve_config())
    assert schema.http_options.host == "127.0.0.1" != "0.0.0.0"
    assert schema.http_options.port == 8000
    (app,) = schema.applications
    assert (app.name, app.import_path, app.route_prefix) == (
        "tripwire", "serve_apps.deploy:app", "/")
    secretish = ("TOKEN", "DSN", "PASSWORD", "KEY", "SECRET")
    assert not [k for k in app.runtime_env.get("env_vars", {}) if any(s in k for s in secretish)]


def test_serve_config_deployments_match_what_serve_build_makes_of_the_code(
        migrated_db, monkeypatch, tmp_path):
    from ray.serve._private.build_app import build_app
    from ray.serve.deployment import deployment_to_schema

    from serve_apps.deploy import app

    monkeypatch.setenv("TRIPWIRE_PG_DSN", migrated_db)
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "test-token")
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # like a Serve build task: args.config resolves in the checkout
    (cfg,) = _serve_config()["applications"]
    built = build_app(app(cfg["args"]), name=cfg["name"])
    # exactly what `serve build` writes for each deployment
    expected = {d.name: deployment_to_schema(d).model_dump(exclude_unset=True)
                for d in built.deployments}
    assert {d["name"]: d for d in cfg["deployments"]} == expected


# ----------------------------------------------------------------------------- runtime env

def test_runtime_env_packages_the_repo_small_and_without_the_venv(tmp_path):
    from ray._private.runtime_env.packaging import create_package
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / "runtime-env.yaml").read_text())
    RuntimeEnv(**env)  # Ray accepts every field as written (what `--runtime-env` loads)
    assert env["working_dir"] == "."
    assert {".venv/", "build/", "data/"} <= set(env["excludes"])
    assert env["env_vars"]["TRIPWIRE_CONFIG"] == "cluster/tripwire-cluster.toml"
    assert (ROOT / env["env_vars"]["TRIPWIRE_CONFIG"]).is_file()
    assert not any(k.startswith("RAY_AUTH") for k in env["env_vars"])
    assert (ROOT / ".venv").is_dir()  # else the test would prove nothing about excluding it
    pkg = tmp_path / "pkg.zip"
    # Ray's own packaging, with .gitignore NOT honoured: our excludes alone must suffice.
    create_package(str(ROOT), pkg, include_gitignore=False, excludes=env["excludes"])
    names = zipfile.ZipFile(pkg).namelist()
    assert "serve_apps/deploy.py" in names and "cluster/serve-config.yaml" in names
    for banned in (".venv/", "build/", "data/", ".git/"):
        assert not [n for n in names if n.startswith(banned)], banned
    assert not [n for n in names if n.endswith(".so") or "__pycache__" in n]
    assert pkg.stat().st_size < 50 * 1024 * 1024


# -------------------------------------------------------------------- serve_apps.deploy:app

def test_app_builder_returns_a_serve_application(migrated_db, monkeypatch):
    from ray import cloudpickle
    from ray.serve import Application
    from ray.serve._private.build_app import build_app

    from serve_apps.deploy import app

    monkeypatch.setenv("TRIPWIRE_PG_DSN", migrated_db)
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "test-token")
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    built = app({"symbols": "BTCUSDT, ETHUSDT"})
    assert isinstance(built, Application)
    spec = built._bound_deployment.init_args[0]  # Ingress(spec, dataplane, signoff)
    assert spec.dsn == migrated_db and spec.symbols == ("BTCUSDT", "ETHUSDT")
    # Only a salted verifier of the token goes into the app (its pickled init args are what
    # the Serve controller keeps and ships to replicas), never the token itself.
    assert spec.verifier.check(b"test-token") and not spec.verifier.check(b"test-tokem")
    assert "test-token" not in repr(spec)
    assert b"test-token" not in cloudpickle.dumps(built)
    deployments = build_app(built, name="tripwire").deployments
    assert len(deployments) == 4
    assert not [d.name for d in deployments if (d.ray_actor_options or {}).get("runtime_env")]
    default = app({})._bound_deployment.init_args[0]
    assert len(default.symbols) == 24 and default.symbols[0] == "BTCUSDT"


def test_app_builder_refuses_a_missing_dsn_or_token_naming_it(monkeypatch):
    from serve_apps.deploy import app

    monkeypatch.delenv("TRIPWIRE_PG_DSN", raising=False)
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "test-token")
    with pytest.raises(ValueError, match="TRIPWIRE_PG_DSN is not set"):
        app({})
    monkeypatch.setenv("TRIPWIRE_PG_DSN", "postgresql://tripwire@db.invalid/tripwire")
    monkeypatch.delenv("TRIPWIRE_API_TOKEN")
    with pytest.raises(ValueError, match="TRIPWIRE_API_TOKEN is not set"):
        app({})


def test_app_builder_rejects_bad_args(monkeypatch):
    from serve_apps.deploy import app

    monkeypatch.setenv("TRIPWIRE_PG_DSN", "postgresql://tripwire@db.invalid/tripwire")
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "test-token")
    with pytest.raises(ValueError, match=r"unknown application args \['symbol'\]"):
        app({"symbol": "BTCUSDT"})
    with pytest.raises(ValueError, match="symbols must not repeat"):
        app({"symbols": ["BTCUSDT", "BTCUSDT"]})
    with pytest.raises(ValueError, match="symbols must be non-empty"):
        app({"symbols": "BTCUSDT,,ETHUSDT"})
    with pytest.raises(ValueError, match="config file nope.toml does not exist"):
        app({"config": "nope.toml"})
