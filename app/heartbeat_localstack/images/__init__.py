"""Docker images without a registry: base images, the test services' images, the project's image.

    python -m heartbeat_localstack.images base|services|app|all    (see __main__)

`base` chooses public bases where a registry answers and makes local ones with debootstrap
otherwise; `cache` keeps images as ``docker save`` tars under ``~/.cache/heartbeat/images``;
`wheels` fetches the image's wheels on the host; `build` builds the Kafka and PostgreSQL
images the testcontainers fixtures run (recipes in ``kafka/`` and ``postgres/``) and the
repository's Dockerfile. Every docker command goes through `heartbeat_localstack.docker`.
"""
