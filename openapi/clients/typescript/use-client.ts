// What a TypeScript consumer of the articles API writes, with the types openapi-typescript
// generates from openapi/articles.openapi.json and openapi-fetch's client (scripts/client-checks).
//
// It must type-check under `tsc --strict` with no undefined check (`?.`, `!`, `if (x)`) on a
// field the server always answers (`article` in every response, `id`, `title`, `articles`, an
// error's `code`, `details` and `details[0]["@type"]`): if the document made one optional again,
// tsc fails here with "'data.article' is possibly 'undefined'" or the like. The only narrowing is
// openapi-fetch's own, on whether the status code gave `data` or `error`.
//
// Run with node and a base URL and an API token, it also calls a live gateway.
import createClient from "openapi-fetch";
import type { components, paths } from "../generated/typescript/articles.js";

type Article = components["schemas"]["Article"];
type Status = components["schemas"]["Status"];

const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

function fail(what: string, value: unknown): never {
  throw new Error(`${what}: ${JSON.stringify(value)}`);
}

// Typed as the server answers them: a field that became optional fails here.
function fields(article: Article): [number, string, string, string] {
  return [article.id, article.title, article.content, article.create_time];
}

function line(article: Article): string {
  const [id, title, content, created] = fields(article);
  return `${id}: ${title} (${created}, ${content.length} chars)`;
}

// The details' type URLs, the first indexed as a consumer would (`details[0]["@type"]`).
function detailTypes(status: Status): string[] {
  if (status.details.length === 0) return [];
  const first: string = status.details[0]["@type"];
  return [first, ...status.details.slice(1).map((detail) => detail["@type"])];
}

async function main(baseUrl: string, token: string): Promise<void> {
  const client = createClient<paths>({ baseUrl });
  const auth = { Authorization: `Bearer ${token}` };

  const list = await client.GET("/articles", { params: { query: { page_size: 2 } } });
  if (list.error !== undefined) fail("list failed", list.error);
  const articles: Article[] = list.data.articles;
  const total: number = list.data.total;
  const nextPageToken: string = list.data.next_page_token;
  if (articles.length === 0 || total < articles.length) fail("bad page", list.data);
  console.log("page", total, JSON.stringify(nextPageToken));

  const shown = await client.GET("/articles/{pk}", {
    params: { path: { pk: articles[0].id } },
  });
  if (shown.error !== undefined) fail("detail failed", shown.error);
  console.log("detail", line(shown.data.article));

  const missing = await client.GET("/articles/{pk}", { params: { path: { pk: 2147483647 } } });
  if (missing.error === undefined) fail("expected NOT_FOUND", missing.data);
  if (missing.error.code !== NOT_FOUND) fail("expected NOT_FOUND", missing.error);

  const created = await client.POST("/articles", {
    headers: auth,
    body: { title: "From the generated TypeScript client", content: "Typed end to end." },
  });
  if (created.error !== undefined) fail("create failed", created.error);
  const article: Article = created.data.article;
  // 201 Created, with the new article's URL in `Location`.
  const location = created.response.headers.get("location");
  if (created.response.status !== 201 || location !== `/articles/${article.id}`) {
    fail("expected 201 at the article's URL", { status: created.response.status, location });
  }
  console.log("created", line(article));

  const rejected = await client.POST("/articles", {
    headers: auth,
    body: { title: "", content: "text" },
  });
  if (rejected.error === undefined) fail("expected INVALID_ARGUMENT", rejected.data);
  const code: number = rejected.error.code;
  const types = detailTypes(rejected.error);
  // Until the gateway's rules come from buf.validate, a missing field is answered with no
  // detail; a detail that is there must be the BadRequest naming the field.
  if (code !== INVALID_ARGUMENT || types.some((type) => type !== BAD_REQUEST)) {
    fail("expected INVALID_ARGUMENT, details BadRequest if any", rejected.error);
  }
  console.log("rejected", code, rejected.error.message, types);
}

const [baseUrl, token] = process.argv.slice(2);
if (baseUrl === undefined || token === undefined) {
  console.error("usage: node use-client.js BASE_URL API_TOKEN");
  process.exit(2);
}
main(baseUrl, token).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
