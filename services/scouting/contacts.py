"""The counterpart contact at rest: sealed with Fernet (AES-128-CBC + HMAC), opened only for crm."""

from cryptography.fernet import Fernet, InvalidToken

from services.scouting.models import CounterpartContact


class ContactVault:
    """Seals and opens counterpart contacts with the service's key."""

    def __init__(self, key: str | None) -> None:
        self._fernet = Fernet(key.encode()) if key else None

    @property
    def ready(self) -> bool:
        return self._fernet is not None

    def seal(self, contact: CounterpartContact) -> bytes:
        if self._fernet is None:
            raise RuntimeError("CONTACT_ENCRYPTION_KEY is not set: contacts cannot be stored")
        return self._fernet.encrypt(contact.model_dump_json().encode())

    def open(self, sealed: bytes) -> CounterpartContact:
        if self._fernet is None:
            raise RuntimeError("CONTACT_ENCRYPTION_KEY is not set: contacts cannot be read")
        try:
            return CounterpartContact.model_validate_json(self._fernet.decrypt(sealed))
        except InvalidToken as error:
            raise RuntimeError("a contact was sealed with another key") from error


def new_key() -> str:
    return Fernet.generate_key().decode()
