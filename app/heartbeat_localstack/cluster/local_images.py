"""The images a real node runs without a registry: the project's, and the dev dependencies'.

The project's image is ``make image``'s (``heartbeat:dev``); Kafka (KRaft) and PostgreSQL are
the images the testcontainers fixtures run (``heartbeat_localstack.images``), built once and
kept as tars. `dev_deps_values` gives charts/dev-deps the values that run them: their names,
``pullPolicy: Never`` (they are on the node already) and the users the images run as.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.exceptions import LocalStackError
from heartbeat_localstack.images import build


@dataclass(frozen=True)
class ImageUser:
    uid: int
    gid: int


@dataclass(frozen=True)
class LocalImages:
    app: str
    kafka: str
    postgres: str
    kafka_user: ImageUser
    postgres_user: ImageUser

    @property
    def names(self) -> tuple[str, ...]:
        return (self.app, self.kafka, self.postgres)


def ensure(cli: DockerCLI, app: str = build.APP_IMAGE) -> LocalImages:
    """The images, Kafka's and PostgreSQL's built (or reloaded) when the engine lacks them.

    The project's image is not built here (`make image` does, in seconds when unchanged).
    """
    if cli.server_version() is None:
        raise LocalStackError("no Docker engine answers; run make docker first")
    if cli.image_id(app) is None:
        raise LocalStackError(f"the engine has no {app}; run make image first")
    kafka = build.kafka_image(cli)
    postgres = build.postgres_image(cli)
    return LocalImages(app, kafka, postgres, _user(cli, kafka), _user(cli, postgres))


def dev_deps_values(images: LocalImages) -> dict[str, Any]:
    """Values of charts/dev-deps that run the local Kafka and PostgreSQL images."""

    def component(image: str, user: ImageUser) -> dict[str, Any]:
        policy = {"image": image, "pullPolicy": "Never"}
        return {**policy, "runAsUser": user.uid, "runAsGroup": user.gid}

    return {
        "kafka": component(images.kafka, images.kafka_user),
        "postgresql": component(images.postgres, images.postgres_user),
    }


def heartbeat_image_values(images: LocalImages) -> dict[str, Any]:
    """The `image` values of charts/heartbeat for the local project image."""
    repository, _, tag = images.app.rpartition(":")
    return {"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"}}


def _user(cli: DockerCLI, image: str) -> ImageUser:
    """The numeric user and group the image runs as (a pod's securityContext needs numbers)."""
    result = cli.run(
        ["run", "--rm", "--network=none", "--entrypoint", "sh", image, "-c", "id -u; id -g"],
        check=False,
    )
    try:
        uid, gid = (int(line) for line in result.stdout.split())
    except ValueError as exc:
        raise LocalStackError(f"cannot tell which user {image} runs as: {result.stderr}") from exc
    return ImageUser(uid, gid)
