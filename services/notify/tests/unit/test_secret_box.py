"""Agency webhook secrets sealed at rest: round trip, rotation, plain values from before."""

import pytest
from cryptography.fernet import Fernet, InvalidToken

from zhumeng_notify.adapters.secret_box import SEALED, SecretBox, keys_of
from zhumeng_notify.app.agency_feed import DEV_SECRETS_KEY, AgencyFeedSettings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SECRET = "whsec_an-agency-secret-of-some-length"


def test_a_sealed_secret_is_not_the_secret_and_opens_again() -> None:
    box = SecretBox([OLD])
    sealed = box.seal(SECRET)
    assert sealed.startswith(SEALED) and SECRET not in sealed
    assert box.open(sealed) == SECRET and not box.needs_sealing(sealed)


def test_a_value_stored_before_sealing_is_read_as_it_is_and_wants_sealing() -> None:
    box = SecretBox([OLD])
    assert box.open(SECRET) == SECRET and box.needs_sealing(SECRET)


def test_rotation_opens_with_the_old_key_and_seals_with_the_new_one() -> None:
    sealed_old = SecretBox([OLD]).seal(SECRET)
    rotating = SecretBox([NEW, OLD])
    assert rotating.open(sealed_old) == SECRET and rotating.needs_sealing(sealed_old)
    resealed = rotating.seal(SECRET)
    assert SecretBox([NEW]).open(resealed) == SECRET
    with pytest.raises(InvalidToken):  # once the old key is dropped, old seals do not open
        SecretBox([NEW]).open(sealed_old)


def test_keys_are_validated() -> None:
    assert keys_of(f" {NEW} , {OLD},") == [NEW, OLD]
    with pytest.raises(ValueError):
        keys_of("not-a-fernet-key")
    with pytest.raises(ValueError):
        SecretBox([])


def test_production_refuses_the_development_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUMENG_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="ZHUMENG_AGENCY_SECRETS_KEYS"):
        AgencyFeedSettings()
    monkeypatch.setenv("ZHUMENG_AGENCY_SECRETS_KEYS", f"{NEW},{DEV_SECRETS_KEY}")
    with pytest.raises(ValueError, match="ZHUMENG_AGENCY_SECRETS_KEYS"):
        AgencyFeedSettings()
    monkeypatch.setenv("ZHUMENG_AGENCY_SECRETS_KEYS", NEW)
    assert AgencyFeedSettings().secrets_keys.get_secret_value() == NEW
