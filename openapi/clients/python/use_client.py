"""What a Python consumer of the articles API writes, against the client that openapi-python-client
generates from openapi/articles.openapi.json (scripts/client-checks).

It must type-check under `mypy --strict` with no `Unset` or `None` check on a field the server
always answers (`article` in every response, `id`, `title`, `articles`, an error's `code` and
`details`): if the document made one of them optional again, mypy fails here with
`Item "Unset" of "Article | Unset" has no attribute "title"` or the like. The only narrowing is on
which response came back (the success model or `Status`), which the status code decides.

Run with a base URL and an API token, it also calls a live gateway, so the generated models must
parse what the server really answers.
"""

from __future__ import annotations

import sys
from http import HTTPStatus
from typing import TypeVar

import httpx

from articles_client import AuthenticatedClient, Client
from articles_client.api.article_service import article_detail, article_list, create_article
from articles_client.models import (
    Article,
    ArticleDetailResponse,
    ArticleListResponse,
    CreateArticleRequest,
    CreateArticleResponse,
    Status,
)

T = TypeVar("T")

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
NOT_FOUND = 5
INVALID_ARGUMENT = 3


def expect(value: object, kind: type[T]) -> T:
    """The response the status code says, or a failure naming what came instead."""
    if not isinstance(value, kind):
        raise SystemExit(f"expected {kind.__name__}, got {value!r}")
    return value


def fields(article: Article) -> tuple[int, str, str, str]:
    """Typed as the server answers them: a field that became optional fails here."""
    return article.id, article.title, article.content, article.create_time


def line(article: Article) -> str:
    pk, title, content, created = fields(article)
    return f"{pk}: {title} ({created}, {len(content)} chars)"


def first_page(client: Client) -> list[Article]:
    page = expect(article_list.sync(client=client, page_size=2), ArticleListResponse)
    articles: list[Article] = page.articles
    total: int = page.total
    next_page: int = page.next_page
    next_page_token: str = page.next_page_token
    if total < len(articles) or (next_page != 0) != (next_page_token != ""):
        raise SystemExit(f"inconsistent page: {page!r}")
    return articles


def detail(client: Client, pk: int) -> Article:
    return expect(article_detail.sync(pk=pk, client=client), ArticleDetailResponse).article


def not_found(client: Client, pk: int) -> Status:
    return expect(article_detail.sync(pk=pk, client=client), Status)


def create(client: AuthenticatedClient, title: str, content: str) -> Article:
    """201 Created, with the new article's URL in `Location`."""
    body = CreateArticleRequest(title=title, content=content)
    response = create_article.sync_detailed(client=client, body=body)
    article = expect(response.parsed, CreateArticleResponse).article
    location = response.headers.get("location")
    if response.status_code != HTTPStatus.CREATED or location != f"/articles/{article.id}":
        raise SystemExit(f"expected 201 at /articles/{article.id}: {response.status_code} {location}")
    return article


def rejected(client: AuthenticatedClient) -> Status:
    body = CreateArticleRequest(title="", content="text")
    return expect(create_article.sync(client=client, body=body), Status)


def main(base_url: str, token: str) -> None:
    public = Client(base_url=base_url, timeout=httpx.Timeout(10.0))
    writer = AuthenticatedClient(base_url=base_url, token=token, timeout=httpx.Timeout(10.0))

    articles = first_page(public)
    if not articles:
        raise SystemExit("the demo data has no article")
    shown = detail(public, articles[0].id)
    print("detail", line(shown))

    missing = not_found(public, 2147483647)
    if missing.code != NOT_FOUND:
        raise SystemExit(f"expected NOT_FOUND, got {missing!r}")

    created = create(writer, "From the generated Python client", "Typed end to end.")
    if detail(public, created.id).title != created.title:
        raise SystemExit(f"created article reads back differently: {created!r}")
    print("created", line(created))

    error = rejected(writer)
    code: int = error.code
    message: str = error.message
    kinds: list[str] = [item.type_ for item in error.details]
    # Until the gateway's rules come from buf.validate, a missing field is answered with no
    # detail; a detail that is there must be the BadRequest naming the field.
    if code != INVALID_ARGUMENT or any(kind != BAD_REQUEST for kind in kinds):
        raise SystemExit(f"expected INVALID_ARGUMENT, details BadRequest if any, got {error!r}")
    print("rejected", code, message, kinds)

if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: use_client.py BASE_URL API_TOKEN")
    main(sys.argv[1], sys.argv[2])
