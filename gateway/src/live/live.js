// The live stream widget (gateway/src/live.rs): lists the routes the server put in
// `.live-routes`, follows the chosen one and shows each event as it arrives. A GET route is
// followed with EventSource, which reconnects by itself, sending the last `id:` it saw as
// Last-Event-ID; a POST route (its body the whole request, written in the form as JSON) with
// fetch, reading the same Server-Sent Events from the response body.
(() => {
  const root = document.currentScript.closest('.live');
  const $ = (selector) => root.querySelector(selector);
  const routes = JSON.parse($('.live-routes').textContent);
  const [select, vars, query, status, list] =
    ['.live-route', '.live-vars', '.live-query', '.live-status', '.live-events'].map($);
  const MAX_SHOWN = 200;
  const MAX_CHARS = 240;
  let source = null;
  let posting = null;

  const show = (state, text) => { status.dataset.state = state; status.textContent = text; };

  routes.forEach((route, i) => {
    const option = document.createElement('option');
    option.value = String(i);
    option.textContent = (route.http_method === 'POST' ? 'POST ' : '')
      + route.path + (route.resumable ? ' (resumable)' : '');
    option.title = route.method;
    select.append(option);
  });

  const renderVars = () => {
    const route = routes[Number(select.value)];
    vars.replaceChildren(...route.variables.map((name) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.name = name;
      input.required = true;
      input.size = 12;
      label.append(`${name} `, input);
      return label;
    }));
    const post = route.http_method === 'POST';
    root.querySelector('.live-query-label').textContent = post ? 'Body' : 'Query';
    query.placeholder = post
      ? JSON.stringify(Object.fromEntries(route.query.map((name) => [name, ''])))
      : route.query.map((name) => `${name}=`).join('&');
  };

  // The concrete path of the chosen route, its variables filled from the form.
  const chosenUrl = () => {
    const route = routes[Number(select.value)];
    let path = route.path;
    for (const input of vars.querySelectorAll('input')) {
      // A multi-segment variable (`{name=shelves/*}`) keeps its slashes.
      const value = input.value.split('/').map(encodeURIComponent).join('/');
      path = path.replace(`{${input.name}}`, value);
    }
    if (route.http_method === 'POST') return path;
    const q = query.value.trim().replace(/^\?/, '');
    return q ? `${path}?${q}` : path;
  };

  // Whatever the first string field holding an enum-like name is (CREATED, UPDATED...).
  const kindOf = (data) => Object.values(data ?? {})
    .find((v) => typeof v === 'string' && /^[A-Z][A-Z0-9_]+$/.test(v));

  const append = (message) => {
    let data;
    try { data = JSON.parse(message.data); } catch { data = message.data; }
    const item = document.createElement('li');
    if (message.lastEventId) item.dataset.eventId = message.lastEventId;
    const kind = kindOf(data);
    if (kind) {
      const badge = document.createElement('span');
      badge.className = 'live-kind';
      badge.textContent = kind;
      item.append(badge);
    }
    const meta = document.createElement('span');
    meta.className = 'live-meta';
    meta.textContent = (message.lastEventId ? `#${message.lastEventId} · ` : '')
      + new Date().toLocaleTimeString();
    const body = document.createElement('code');
    body.className = 'live-data';
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    // Long messages (an article's content) shortened; the whole one is the tooltip.
    body.textContent = text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS)}…` : text;
    body.title = text;
    item.append(meta, body);
    list.prepend(item);
    while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
  };

  // EventSource gives no reason when an answer is not a stream: ask once more for it.
  const explainRefusal = async (url) => {
    const abort = new AbortController();
    try {
      const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
      if (response.ok) return 'the stream ended';
      const error = await response.json();
      return `${error.message} (code ${error.code}, HTTP ${response.status})`;
    } catch {
      return 'the stream is unavailable';
    } finally {
      abort.abort();
    }
  };

  const stop = () => {
    if (source) source.close();
    source = null;
    if (posting) posting.abort();
    posting = null;
  };

  // One Server-Sent Events frame (`event:`, `id:`, `data:` lines) as EventSource would give it.
  const parseFrame = (frame) => {
    const message = { event: 'message', data: [], lastEventId: '' };
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') message.data.push(value);
      else if (field === 'event') message.event = value;
      else if (field === 'id') message.lastEventId = value;
    }
    return { ...message, data: message.data.join('\n') };
  };

  // A POST stream: no EventSource (it only sends GET), so fetch reads the same events.
  const watchPost = async (url, body) => {
    stop();
    list.replaceChildren();
    root.dataset.url = url;
    const abort = new AbortController();
    posting = abort;
    show('connecting', `connecting to POST ${url}…`);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
        body: body || '{}',
        signal: abort.signal,
      });
      if (!response.ok) {
        const error = await response.json().catch(() => ({ message: response.statusText }));
        show('error', `not watching: ${error.message} (code ${error.code}, HTTP ${response.status})`);
        return;
      }
      show('live', `live: POST ${url}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replaceAll('\r\n', '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const message = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (message.event === 'error') {
            let error;
            try { error = JSON.parse(message.data); } catch { error = { message: message.data }; }
            show('error', `${error.message} (code ${error.code})`);
          } else if (message.data) {
            append(message);
          }
        }
      }
      if (posting === abort && status.dataset.state !== 'error') show('idle', 'the stream ended');
    } catch {
      if (posting === abort) show('error', 'the stream is unavailable');
    }
  };

  const watch = (url) => {
    stop();
    list.replaceChildren();
    root.dataset.url = url;
    show('connecting', `connecting to ${url}…`);
    source = new EventSource(url);
    const current = source;
    source.onopen = () => show('live', `live: ${url}`);
    source.onmessage = append;
    source.addEventListener('error', async (message) => {
      if (current !== source) return;
      if (message.data) {
        // An `event: error` frame: the call's gRPC status. EventSource reconnects after it.
        let error;
        try { error = JSON.parse(message.data); } catch { error = { message: message.data }; }
        show('error', `${error.message} (code ${error.code}); reconnecting…`);
      } else if (source.readyState === EventSource.CLOSED) {
        show('error', `not watching: ${await explainRefusal(url)}`);
      } else if (status.dataset.state !== 'error') {
        show('connecting', 'reconnecting…');
      }
    });
  };

  if (routes.length === 0) {
    root.querySelector('form').hidden = true;
    show('idle', 'this API has no server-streaming route');
    return;
  }
  select.addEventListener('change', renderVars);
  root.querySelector('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const route = routes[Number(select.value)];
    if (route.http_method === 'POST') watchPost(chosenUrl(), query.value.trim());
    else watch(chosenUrl());
  });

  // The page's own query: `watch` names the stream, the rest is passed on to it.
  const params = new URLSearchParams(location.search);
  const asked = params.get('watch');
  params.delete('watch');
  // Opened at once: the first resumable stream without path variables, else the first without
  // (a GET: a POST stream waits for its body).
  const plain = (r) => r.variables.length === 0 && r.http_method !== 'POST';
  const resumable = routes.findIndex((r) => plain(r) && r.resumable);
  const start = resumable >= 0 ? resumable : routes.findIndex(plain);
  select.value = String(start >= 0 ? start : 0);
  renderVars();
  query.value = params.toString();
  const begin = () => {
    if (asked) {
      const q = params.toString();
      watch(q ? `${asked}${asked.includes('?') ? '&' : '?'}${q}` : asked);
    } else if (start >= 0) {
      watch(chosenUrl());
    }
  };
  // A closed panel (on the API docs) starts when it is first opened, not with the page.
  if (root.open) {
    begin();
  } else {
    root.addEventListener('toggle', () => { if (root.open && !source && !posting) begin(); });
  }
})();
