"""Endpoints shared by flows and card templates: create, list, read, edit the draft, publish.

Both are store.versioned documents, so one set of handlers serves them; what
differs (path, how a draft is checked, what publishing checks, whether hooks
must reload) is passed in where each is declared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, json_object, not_found, services
from ingress.api.views import versioned_view
from ingress.auth import admin_only
from ingress.jsonio import json_response
from store.versioned import Versioned

Insert = Callable[[Connection, str, dict[str, Any]], Versioned]
ListAll = Callable[..., Sequence[Versioned]]  # (conn, environment_id, **filters)
#: A listing's filters, by its request's query parameters: the listing's keyword arguments.
ListFilters = Callable[[Request], dict[str, Any]]
Lookup = Callable[[Connection, str, str], Versioned | None]
UpdateDraft = Callable[[Connection, str, str, dict[str, Any]], Versioned | None]


class VersionedEndpoints:
    """The management endpoints of one kind of versioned document under `path`.

    `kind` names it in 404s (`{kind}_not_found`); `checked_draft` refuses or
    completes a request body; `publish` may refuse with its own checks;
    `list_filters` reads what the listing's query asks for (a flow's `archived`).
    `changes_configuration` drops cached hook configurations after an edit
    or a publish, for documents that hooks read.
    """

    def __init__(
        self,
        path: str,
        *,
        id_param: str,
        kind: str,
        checked_draft: Callable[[dict[str, Any]], dict[str, Any]],
        insert: Insert,
        list_all: ListAll,
        get: Lookup,
        update_draft: UpdateDraft,
        publish: Lookup,
        list_filters: ListFilters = lambda request: {},
        changes_configuration: bool = False,
    ) -> None:
        self._path = path
        self._id_param = id_param
        self._kind = kind
        self._checked_draft = checked_draft
        self._insert = insert
        self._list_all = list_all
        self._get = get
        self._update_draft = update_draft
        self._publish = publish
        self._list_filters = list_filters
        self._changes_configuration = changes_configuration

    def routes(self) -> list[Route]:
        one = f"{self._path}/{{{self._id_param}}}"
        return [
            Route(self._path, admin_only(self.create), methods=["POST"]),
            Route(self._path, admin_only(self.list_documents), methods=["GET"]),
            Route(one, admin_only(self.read), methods=["GET"]),
            Route(one, admin_only(self.edit_draft), methods=["PUT"]),
            Route(f"{one}/publish", admin_only(self.publish), methods=["POST"]),
        ]

    async def create(self, request: Request) -> Response:
        env = await environment(request)
        draft = self._checked_draft(await json_object(request))
        document = await services(request).store.write(lambda conn: self._insert(conn, env, draft))
        return json_response(versioned_view(document), 201)

    async def list_documents(self, request: Request) -> Response:
        env = await environment(request)
        filters = self._list_filters(request)
        found = await services(request).store.read(lambda conn: self._list_all(conn, env, **filters))
        return json_response({"data": [versioned_view(document) for document in found]})

    async def read(self, request: Request) -> Response:
        env = await environment(request)
        document_id = request.path_params[self._id_param]
        document = await services(request).store.read(lambda conn: self._get(conn, env, document_id))
        return json_response(versioned_view(self._found(document, document_id)))

    async def edit_draft(self, request: Request) -> Response:
        env = await environment(request)
        document_id = request.path_params[self._id_param]
        draft = self._checked_draft(await json_object(request))
        document = await services(request).store.write(lambda conn: self._update_draft(conn, env, document_id, draft))
        return self._changed(request, self._found(document, document_id))

    async def publish(self, request: Request) -> Response:
        env = await environment(request)
        document_id = request.path_params[self._id_param]
        document = await services(request).store.write(lambda conn: self._publish(conn, env, document_id))
        return self._changed(request, self._found(document, document_id))

    def _found(self, document: Versioned | None, document_id: str) -> Versioned:
        if document is None:
            raise not_found(self._kind, document_id)
        return document

    def _changed(self, request: Request, document: Versioned) -> Response:
        if self._changes_configuration:
            services(request).configuration_changed()
        return json_response(versioned_view(document))
