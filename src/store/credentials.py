"""API credentials (OAuth2 clients) and the access tokens issued to them.

Only hashes are stored: a client secret as the salted, slow hash the caller
computed (see ingress.client_secrets), an access token as its SHA-256 (it
carries 256 random bits, so a fast hash is enough). Every token lookup joins
its credential, so deleting a credential revokes its tokens at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import access_tokens, credentials


@dataclass(frozen=True)
class Credential:
    client_id: str
    environment_id: str
    name: str
    roles: list[str]
    secret_hash: str
    created_at: datetime


@dataclass(frozen=True)
class AccessToken:
    """What a presented token grants: an environment and the roles it was issued with."""

    client_id: str
    environment_id: str
    roles: list[str]
    expires_at: datetime

    def allows(self, role: str) -> bool:
        return role in self.roles


def insert_credential(conn: Connection, credential: Credential) -> None:
    conn.execute(sa.insert(credentials).values(**credential.__dict__))


def get_credential(conn: Connection, client_id: str) -> Credential | None:
    """Any environment's credential: the token endpoint learns the environment from it."""
    row = conn.execute(sa.select(credentials).where(credentials.c.client_id == client_id)).first()
    return Credential(**row._mapping) if row else None


def list_credentials(conn: Connection, environment_id: str) -> list[Credential]:
    query = (
        sa.select(credentials)
        .where(credentials.c.environment_id == environment_id)
        .order_by(credentials.c.created_at, credentials.c.client_id)
    )
    return [Credential(**row._mapping) for row in conn.execute(query)]


def delete_credential(conn: Connection, environment_id: str, client_id: str) -> bool:
    """Revoke: the credential and every token issued to it; False when there was none."""
    statement = sa.delete(credentials).where(
        credentials.c.client_id == client_id, credentials.c.environment_id == environment_id
    )
    if conn.execute(statement).rowcount == 0:
        return False
    conn.execute(sa.delete(access_tokens).where(access_tokens.c.client_id == client_id))
    return True


def insert_access_token(
    conn: Connection,
    credential: Credential,
    token_hash: str,
    roles: list[str],
    issued_at: datetime,
    expires_at: datetime,
) -> bool:
    """Store a token for `credential`, dropping its expired ones; False if the credential is gone.

    The credential is re-checked inside the write so a token is never issued
    for a credential revoked while its secret was being verified.
    """
    exists = sa.select(credentials.c.client_id).where(credentials.c.client_id == credential.client_id)
    if conn.execute(exists).first() is None:
        return False
    conn.execute(
        sa.delete(access_tokens).where(
            access_tokens.c.client_id == credential.client_id, access_tokens.c.expires_at <= issued_at
        )
    )
    conn.execute(
        sa.insert(access_tokens).values(
            token_hash=token_hash,
            client_id=credential.client_id,
            environment_id=credential.environment_id,
            roles=roles,
            created_at=issued_at,
            expires_at=expires_at,
        )
    )
    return True


def find_access_token(conn: Connection, token_hash: str, now: datetime) -> AccessToken | None:
    """The live token with this hash: not expired, its credential not revoked."""
    query = (
        sa.select(
            access_tokens.c.client_id, access_tokens.c.environment_id, access_tokens.c.roles, access_tokens.c.expires_at
        )
        .join(credentials, credentials.c.client_id == access_tokens.c.client_id)
        .where(access_tokens.c.token_hash == token_hash, access_tokens.c.expires_at > now)
    )
    row = conn.execute(query).first()
    return AccessToken(**row._mapping) if row else None
