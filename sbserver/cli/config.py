"""``.backend.yml``: where the CLI keeps its public key, host and tokens."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

KEYS = ("pubKey", "region", "rootToken", "email", "password", "authToken")
FILE = ".backend.yml"


@dataclass
class Config:
    pubKey: str = ""
    region: str = ""
    rootToken: str = ""
    email: str = ""
    password: str = ""
    authToken: str = ""
    path: Path = Path(FILE)

    @property
    def host(self) -> str:
        """``dev``/empty -> localhost:8099, ``na1`` -> hosted, a URL as is, else https://<value>."""
        region = self.region.strip()
        if region in ("", "dev"):
            return "http://localhost:8099"
        if region == "na1":
            return "https://na1.staticbackend.dev"
        if "://" in region:
            return region.rstrip("/")
        return f"https://{region}"

    def save(self) -> None:
        lines = [f"{k}: {getattr(self, k)}" for k in KEYS]
        self.path.write_text("\n".join(lines) + "\n")
        os.chmod(self.path, 0o660)


def _clean(value: object) -> str:
    return str(value if value is not None else "").strip().strip("'\"")


def load(explicit: str | None = None) -> Config:
    """The config file (explicit, ./.backend.yml, or ~/.config/backend/), then env overrides."""
    candidates = [Path(explicit)] if explicit else [Path(FILE), Path.home() / ".config" / "backend" / FILE]
    cfg = Config(path=candidates[0])
    for path in candidates:
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            if isinstance(data, dict):
                for f in fields(Config):
                    if f.name in data:
                        setattr(cfg, f.name, _clean(data[f.name]))
            cfg.path = path
            break
    for key in KEYS:
        env = os.environ.get(key.upper())
        if env:
            setattr(cfg, key, _clean(env))
    return cfg
