"""The Responses API's state at the front door: stored responses for `previous_response_id`,
and `GET` / `DELETE /v1/responses/{id}`.

The store is made on first use, per worker (`settings.responses_store`); a request that names
a previous response gets that conversation as history, or a 400 naming the id.
"""

import time

from proxy import asgi, errors, responses_store
from proxy.config import Settings
from proxy.core.exchange import Exchange
from proxy.core.responses import ResponsesCall
from proxy.record import RequestRecord
from proxy.responses_store import MemoryStore, ResponsesStore
from proxy.runtime import Snapshot
from proxy.translate import responses_chat

_JSON = (b"content-type", b"application/json")


class StoredResponses:
    def __init__(self) -> None:
        self._store: ResponsesStore | None = None

    def store(self, settings: Settings) -> ResponsesStore:
        if self._store is None:
            kept = settings.responses_store
            self._store = MemoryStore(ttl=kept.ttl, max_bytes=kept.max_bytes)
        return self._store

    async def prepare(self, body: bytes, settings: Settings) -> ResponsesCall:
        """The decoded request (a 400 if it is not one), its stored history, its new id."""
        request = responses_chat.decode(body)
        store = self.store(settings)
        history = None
        if request.previous_response_id:
            found = await store.get(request.previous_response_id)
            history = responses_chat.stored_items(found.conversation) if found else None
        return ResponsesCall(request, history, responses_store.new_id(), int(time.time()), store)

    async def by_id(self, scope: asgi.Scope, send: asgi.Send, snapshot: Snapshot) -> None:
        headers = asgi.headers_of(scope)
        rid = headers.get(b"x-request-id")
        request_id = rid.decode("latin-1")[:128] if rid else asgi.new_request_id()
        rec = RequestRecord(request_id, "responses", "openai", False, time.time())
        ex = Exchange(send, "openai", request_id, rec)
        settings = snapshot.settings
        try:
            if scope["method"] not in ("GET", "DELETE"):
                raise errors.MethodNotAllowed(f"{scope['path']} takes GET or DELETE")
            snapshot.keyring.identify_headers(scope["headers"], settings.key_headers)
            ident = scope["path"].removeprefix("/v1/responses/").strip("/")
            store = self.store(settings)
            if scope["method"] == "GET":
                found = await store.get(ident)
                if found is not None:
                    await ex.answer(200, [_JSON], found.response)
                    return
            elif await store.delete(ident):
                await ex.answer(200, [_JSON], responses_store.deleted(ident))
                return
            raise errors.NotFound(
                f"response '{ident}' is not stored here (it expired, was deleted, was made with "
                "store: false or by another gateway)",
                param="response_id",
            )
        except errors.ProxyError as err:
            allow = [(b"allow", b"GET, DELETE")] if err.status == 405 else []
            await ex.fail(err, allow)
