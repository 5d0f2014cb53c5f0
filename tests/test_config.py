"""Settings come from the environment or *_FILE files and fail loudly."""

from __future__ import annotations

import pytest

from bastion.config import ConfigError, Settings

SECRET = "s" * 40
BASE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1/bastion",
    "SECRET_KEY": SECRET,
    "JWT_KEY_ENCRYPTION_KEY": "k" * 40,
}


def test_defaults_are_production_and_conservative():
    settings = Settings.from_env(BASE)

    assert settings.is_production
    assert settings.db_pool_max_size <= 10
    assert settings.db_pool_timeout < 30
    assert settings.access_token_ttl == 900
    assert settings.bcrypt_rounds == 12


def test_missing_settings_are_all_named():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({})

    message = str(raised.value)
    for name in ("DATABASE_URL", "SECRET_KEY", "JWT_KEY_ENCRYPTION_KEY"):
        assert name in message


def test_setting_is_read_from_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 40 + "\n")
    environ = {**BASE, "SECRET_KEY": "", "SECRET_KEY_FILE": str(secret_file)}

    assert Settings.from_env(environ).secret_key == "f" * 40


def test_unreadable_file_is_named(tmp_path):
    environ = {**BASE, "SECRET_KEY": "", "SECRET_KEY_FILE": str(tmp_path / "missing")}

    with pytest.raises(ConfigError, match="SECRET_KEY_FILE"):
        Settings.from_env(environ)


@pytest.mark.parametrize("value", ["short", "changeme"])
def test_weak_secret_is_rejected(value):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({**BASE, "SECRET_KEY": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_POOL_MAX_SIZE", "zero"),
        ("DB_POOL_MAX_SIZE", "0"),
        ("DB_POOL_TIMEOUT", "-1"),
        ("SIGNUP_ENABLED", "maybe"),
        ("BASTION_ENV", "staging"),
        ("BCRYPT_ROUNDS", "40"),
    ],
)
def test_invalid_value_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**BASE, name: value})


def test_production_rejects_low_bcrypt_cost():
    with pytest.raises(ConfigError, match="BCRYPT_ROUNDS"):
        Settings.from_env({**BASE, "BCRYPT_ROUNDS": "4"})

    assert (
        Settings.from_env(
            {**BASE, "BCRYPT_ROUNDS": "4", "BASTION_ENV": "test"}
        ).bcrypt_rounds
        == 4
    )


def test_pool_min_above_max_is_rejected():
    with pytest.raises(ConfigError, match="DB_POOL_MIN_SIZE"):
        Settings.from_env({**BASE, "DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"})


def test_value_and_file_together_are_rejected(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 40)

    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({**BASE, "SECRET_KEY_FILE": str(secret_file)})


def test_value_and_file_together_give_one_message(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 40)

    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**BASE, "SECRET_KEY_FILE": str(secret_file)})

    assert "SECRET_KEY: missing" not in str(raised.value)


def test_database_url_must_be_postgresql():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env({**BASE, "DATABASE_URL": "x"})


def test_readyz_checks_migrations_unless_switched_off():
    assert Settings.from_env(BASE).readyz_check_migrations is True
    off = {**BASE, "READYZ_CHECK_MIGRATIONS": "false"}
    assert Settings.from_env(off).readyz_check_migrations is False
    with pytest.raises(ConfigError, match="READYZ_CHECK_MIGRATIONS"):
        Settings.from_env({**BASE, "READYZ_CHECK_MIGRATIONS": "maybe"})


def test_edge_defaults_trust_no_proxy_and_count_in_memory():
    settings = Settings.from_env(BASE)

    assert settings.trusted_proxy_count == 0
    assert settings.cors_allowed_origins == ()
    assert settings.ratelimit_storage_uri == "memory://"
    assert not settings.ratelimit_storage_is_shared
    assert settings.password_hash_concurrency >= 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATELIMIT_LOGIN_PER_ADDRESS", "lots"),
        ("RATELIMIT_DEFAULT", "10 per fortnight"),
        ("RATELIMIT_STORAGE_URI", "memcached://127.0.0.1:11211"),
        ("RATELIMIT_STORAGE_URI", "127.0.0.1:6379"),
        ("RATELIMIT_STRATEGY", "token-bucket"),
        ("TRUSTED_PROXY_COUNT", "-1"),
        ("PASSWORD_HASH_CONCURRENCY", "0"),
    ],
)
def test_invalid_edge_setting_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**BASE, name: value})


def test_rate_limit_and_redis_settings_are_read():
    settings = Settings.from_env(
        {
            **BASE,
            "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/2",
            "RATELIMIT_LOGIN_PER_EMAIL": "3 per minute; 10 per hour",
            "CORS_ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000",
        }
    )

    assert settings.ratelimit_storage_is_shared
    assert settings.ratelimit_login_per_email == "3 per minute; 10 per hour"
    assert settings.cors_allowed_origins == (
        "https://app.example.com",
        "http://localhost:3000",
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("off", None), ("OFF", None), ("0", 0), ("7", 7)]
)
def test_prepare_threshold_accepts_off_or_count(value, expected):
    settings = Settings.from_env({**BASE, "DB_PREPARE_THRESHOLD": value})

    assert settings.db_prepare_threshold == expected


def test_prepare_threshold_rejects_other_words():
    with pytest.raises(ConfigError, match="DB_PREPARE_THRESHOLD"):
        Settings.from_env({**BASE, "DB_PREPARE_THRESHOLD": "never"})
