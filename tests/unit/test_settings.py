"""Settings: defaults, errors that name the setting, and docs kept in sync."""

from pathlib import Path

import pytest

from heartbeat.cli import env_example, main, settings_markdown
from heartbeat.errors import SettingsError
from heartbeat.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_every_setting_has_a_description_and_a_local_default():
    settings = load_settings()
    assert settings.kafka_topic == "heartbeats"
    assert settings.kafka_dlq_topic == "heartbeats.dlq"
    assert settings.kafka_topic_partitions == 6
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_environment_sets_values_and_options_win_over_it(monkeypatch):
    monkeypatch.setenv("PRODUCER_RATE", "250")
    monkeypatch.setenv("KAFKA_TOPIC", "other")
    settings = load_settings(producer_rate=10, producer_count=None)
    assert settings.producer_rate == 10
    assert settings.kafka_topic == "other"


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("KAFKA_CONSUMER_GROUP=from-dotenv\n")
    assert load_settings().kafka_consumer_group == "from-dotenv"


def test_each_bad_setting_is_named_in_one_message(monkeypatch):
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "0")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    monkeypatch.setenv("METRICS_PORT", "seventy")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    for name in ("KAFKA_TOPIC_PARTITIONS", "LOG_FORMAT", "METRICS_PORT"):
        assert name in message
    assert "KAFKA_TOPIC:" not in message


def test_secrets_are_never_shown(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert "s3cret" not in repr(settings)
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "s3cret" not in out


def test_absurd_skew_is_named(monkeypatch):
    monkeypatch.setenv("CONSUMER_MAX_FUTURE_SKEW_SECONDS", "1e300")
    with pytest.raises(SettingsError, match="CONSUMER_MAX_FUTURE_SKEW_SECONDS"):
        load_settings()


@pytest.mark.parametrize("command", ["consume", "produce", "tail"])
def test_missing_tls_file_exits_2_naming_the_setting(monkeypatch, capsys, tmp_path, command):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("METRICS_PORT", "0")
    assert main([command]) == 2
    assert "KAFKA_SSL_CA_LOCATION" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["migrate", "stats", "consume"])
def test_malformed_database_url_exits_2_without_echoing_it(monkeypatch, capsys, command):
    monkeypatch.setenv("DATABASE_URL", "host=db password=hunter2 oops")
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err
    assert "hunter2" not in err


def test_bad_setting_exits_2_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("CONSUMER_BATCH_MAX_MESSAGES", "-5")
    assert main(["consume"]) == 2
    err = capsys.readouterr().err
    assert "CONSUMER_BATCH_MAX_MESSAGES" in err


def test_inconsistent_combination_is_refused(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError, match="KAFKA_SASL_MECHANISM"):
        load_settings()
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("RETRY_INITIAL_SECONDS", "10")
    monkeypatch.setenv("RETRY_MAX_SECONDS", "1")
    with pytest.raises(SettingsError, match="RETRY_MAX_SECONDS"):
        load_settings()


def test_hourly_rollups_kept_for_less_time_than_the_minutes_are_refused(monkeypatch):
    monkeypatch.setenv("ROLLUP_RETENTION_DAYS", "90")
    monkeypatch.setenv("HOURLY_ROLLUP_RETENTION_DAYS", "30")
    with pytest.raises(SettingsError, match="HOURLY_ROLLUP_RETENTION_DAYS"):
        load_settings()


def test_env_example_lists_every_setting_with_its_default():
    committed = (ROOT / ".env.example").read_text()
    assert committed == env_example(), (
        "regenerate with: heartbeat settings --env-example > .env.example"
    )
    names = {
        line.split("=", 1)[0]
        for line in committed.splitlines()
        if line and not line.startswith("#")
    }
    from heartbeat_operator.settings import OperatorSettings

    operator = {f"OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    assert names == {name.upper() for name in Settings.model_fields} | operator


def test_readme_settings_table_is_current():
    readme = (ROOT / "README.md").read_text()
    assert settings_markdown() in readme, "regenerate with: heartbeat settings --markdown"


def test_producer_shard_comes_from_the_setting_or_the_statefulset_ordinal():
    from heartbeat.producer import shard_index

    assert shard_index(load_settings(producer_shard_count=3, producer_shard_index=1)) == 1
    sharded = load_settings(producer_shard_count=3)
    assert shard_index(sharded, hostname="sim-generator-2") == 2
    assert shard_index(load_settings(), hostname="whatever") == 0
    with pytest.raises(SettingsError, match="PRODUCER_SHARD_INDEX"):
        shard_index(sharded, hostname="sim-generator-7")


def test_more_shards_than_customers_is_refused():
    with pytest.raises(SettingsError, match="PRODUCER_SHARD_COUNT"):
        load_settings(producer_customers=2, producer_shard_count=3)
