/* orbitwatch ground console.
 *
 * Reads the JSON API of pipelines/ground/web/app.py: /api/info once, /api/alerts for the markers of
 * the current filters, /api/alerts?since=<cursor> every poll_s for new alerts (no reload), and
 * /api/alerts/<id> for an alert's detail. Markers are Leaflet circleMarkers on one canvas renderer
 * (DOM markers stall the page at 10,000). Every text from the store goes in with textContent, never
 * innerHTML: scene and detector names come from the downlink.
 * window.ow exposes the state the browser tests and the benchmark read (ready, markers, readyMs).
 */
(function () {
  "use strict";
  const KIND_COLOR = { vessel: "#1f6fd1", lifeboat: "#d62728", fire: "#ff7f0e" };
  const LIST_MAX = 300;
  const $ = (id) => document.getElementById(id);
  // t: where the first load's time went (ms since navigation start), for the benchmark.
  const ow = (window.ow = { ready: false, markers: 0, readyMs: null, polls: 0, selected: null, error: null, t: {} });

  let info = null;
  let cursor = 0;
  let points = [];          // [id, kind, score, lon, lat, acquired (Unix s)], newest first
  let byId = new Map();     // id -> {p, marker}
  let matched = 0;
  let exact = true;
  let generation = 0;       // bumps on every reload: late answers of older requests are dropped

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  function token() { return sessionStorage.getItem("ow-token") || ""; }

  async function api(path, opts) {
    const r = await fetch(path, opts);
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
    if (!r.ok) throw new Error((body && body.detail) || (body && body.description) || r.status + " " + r.statusText);
    return body;
  }

  // --- map ---------------------------------------------------------------------------------------
  const map = L.map("map", { preferCanvas: true, worldCopyJump: true, minZoom: 1, zoomControl: true })
    .setView([20, 0], 2);
  map.createPane("land").style.zIndex = 250;
  const landRenderer = L.canvas({ pane: "land" });
  const markerRenderer = L.canvas({ padding: 0.3, tolerance: 3 });
  let markers = newGroup();
  // The selection ring: one SVG circle above the markers' canvas, so selecting never redraws 10,000 markers.
  map.createPane("selection").style.zIndex = 450;
  const ring = L.circleMarker([0, 0], { renderer: L.svg({ pane: "selection" }), radius: 10, weight: 3,
    color: "#111827", fill: false, interactive: false });

  function newGroup() {
    // A FeatureGroup passes its markers' clicks on; a new one per load, so a reload drops the old
    // markers in one go instead of removing 10,000 layers one by one.
    const g = L.featureGroup();
    g.on("click", (e) => select(e.layer.options.aid, true));
    return g;
  }
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  map.attributionControl.addAttribution("Natural Earth");

  function graticule() {
    const lines = [];
    for (let lon = -180; lon <= 180; lon += 30) lines.push([[-85, lon], [85, lon]]);
    for (let lat = -60; lat <= 60; lat += 30) lines.push([[lat, -180], [lat, 180]]);
    L.polyline(lines, { renderer: landRenderer, color: "#9fb7c6", weight: 0.5, interactive: false }).addTo(map);
  }

  async function loadLand() {
    try {
      const land = await api("static/vendor/natural-earth/land-110m.geojson");
      L.geoJSON(land, { renderer: landRenderer, interactive: false,
        style: { color: "#b7b09c", weight: 0.6, fillColor: "#efece3", fillOpacity: 1 } }).addTo(map);
    } catch (e) { console.warn("land map:", e); }
  }

  // For tests and the benchmark: where an alert's marker is drawn, in pixels from the map's top left.
  ow.pointOf = (id) => {
    const hit = byId.get(id);
    if (!hit) return null;
    const pt = map.latLngToContainerPoint(hit.marker.getLatLng());
    return [pt.x, pt.y];
  };

  function markerFor(p) {
    const m = L.circleMarker([p[4], p[3]], {
      renderer: markerRenderer, radius: 3 + 4 * p[2], weight: 1, color: "#ffffff", opacity: 0.9,
      fillColor: KIND_COLOR[p[1]], fillOpacity: 0.85, aid: p[0],
    });
    return m;
  }

  // --- filters -------------------------------------------------------------------------------------
  function utcInput(id) {
    const v = $(id).value;
    return v ? (v.length === 16 ? v + ":00" : v) + "Z" : "";
  }

  function wrapLon(x) { return ((((x + 180) % 360) + 360) % 360) - 180; }

  function areaBox() {
    const mode = $("area").value;
    if (mode === "box") return $("box").value.trim();
    if (mode !== "view") return "";
    const b = map.getBounds();
    if (b.getEast() - b.getWest() >= 360) return `-180,${Math.max(-90, b.getSouth()).toFixed(5)},180,${Math.min(90, b.getNorth()).toFixed(5)}`;
    const w = wrapLon(b.getWest()), e = wrapLon(b.getEast());
    return [w, Math.max(-90, b.getSouth()), e, Math.min(90, b.getNorth())].map((v) => v.toFixed(5)).join(",");
  }

  function query() {
    const q = new URLSearchParams();
    const kinds = [...document.querySelectorAll("input[name=kind]:checked")].map((x) => x.value);
    if (kinds.length < 3) q.set("kind", kinds.join(","));
    const ms = parseFloat($("min-score").value);
    if (ms > 0) q.set("min_score", ms.toFixed(2));
    const s = utcInput("start"), e = utcInput("end");
    if (s) q.set("start", s);
    if (e) q.set("end", e);
    const box = areaBox();
    if (box) q.set("bbox", box);
    return q;
  }

  let reloadTimer = null;
  function reloadSoon(ms) { clearTimeout(reloadTimer); reloadTimer = setTimeout(reload, ms === undefined ? 250 : ms); }

  // --- alerts: load, live updates, list ------------------------------------------------------------
  async function reload() {
    const gen = ++generation;
    const q = query();
    $("count").textContent = "loading…";
    let page;
    if (!ow.ready) ow.t.request = performance.now();
    try {
      page = await api("api/alerts?" + q.toString());
    } catch (e) {
      if (gen === generation) { $("count").textContent = "error: " + e.message; $("count").className = "count error"; }
      return;
    }
    if (gen !== generation) return;
    if (!ow.ready) ow.t.answer = performance.now();
    $("count").className = "count";
    cursor = page.cursor;
    points = page.points;
    matched = page.matched === null ? page.matched_at_least : page.matched;
    exact = page.matched !== null;
    const old = markers;
    markers = newGroup();
    byId = new Map();
    // Oldest first so that the newest are drawn on top; the group joins the map once, full.
    for (let i = points.length - 1; i >= 0; i--) addMarker(points[i]);
    map.removeLayer(old);
    markers.addTo(map);
    if (ow.selected && !byId.has(ow.selected)) ring.remove();
    if (!ow.ready) ow.t.markers = performance.now();
    renderList();
    renderCount();
    ow.markers = byId.size;
    // Two frames later the markers are on screen: the first time, the console is ready.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      ow.t.loaded = performance.now();
      ow.loads = (ow.loads || 0) + 1;
      if (!ow.ready) {
        ow.ready = true;
        ow.readyMs = ow.t.loaded;
        document.body.dataset.ready = "1";
      }
    }));
  }

  function addMarker(p) {
    if (byId.has(p[0])) return false;
    const m = markerFor(p);
    markers.addLayer(m);
    byId.set(p[0], { p: p, marker: m });
    return true;
  }

  function fmtTime(t) { return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"); }

  function listItem(p, fresh) {
    const li = el("li", { "data-id": p[0], class: fresh ? "new" : "", onclick: () => select(p[0], false) },
      el("span", { class: "dot " + p[1] }), el("span", {}, `${p[1]} ${p[2].toFixed(2)}`),
      el("span", { class: "when" }, fmtTime(p[5])));
    if (ow.selected === p[0]) li.classList.add("sel");
    return li;
  }

  function renderList() {
    const list = $("list");
    list.replaceChildren(...points.slice(0, LIST_MAX).map((p) => listItem(p, false)));
    if (points.length > LIST_MAX) list.append(el("li", { class: "more" }, `… ${points.length - LIST_MAX} more on the map`));
  }

  function renderCount() {
    const shown = byId.size;
    const total = exact ? matched.toLocaleString() : `more than ${(matched - 1).toLocaleString()}`;
    $("count").textContent = shown < matched
      ? `${total} alerts match; the newest ${shown.toLocaleString()} are shown (narrow the filters or the area)`
      : `${total} alerts match`;
    $("summary").textContent = `${(info.alerts).toLocaleString()} alerts stored`;
  }

  async function poll() {
    const gen = generation;
    const q = query();
    q.set("since", String(cursor));
    try {
      const r = await api("api/alerts?" + q.toString());
      $("live").classList.add("on");
      if (gen !== generation) return;
      ow.polls++;
      const fresh = r.points.filter((p) => addMarker(p));
      cursor = r.cursor;
      if (fresh.length) {
        points = fresh.slice().reverse().concat(points);
        matched += fresh.length;
        ow.markers = byId.size;
        const list = $("list");
        for (const p of fresh) list.prepend(listItem(p, true));
        const items = list.querySelectorAll("li:not(.more)");
        for (let i = LIST_MAX; i < items.length; i++) items[i].remove();
        $("live").classList.add("flash");
        setTimeout(() => $("live").classList.remove("flash"), 800);
        info.alerts += fresh.length;
        renderCount();
      }
    } catch (e) {
      $("live").classList.remove("on");
    }
  }

  // --- one alert -----------------------------------------------------------------------------------
  function highlight(id) {
    const hit = id === null ? undefined : byId.get(id);
    if (hit) {
      ring.setLatLng(hit.marker.getLatLng()).setRadius(hit.marker.getRadius() + 4);
      if (!map.hasLayer(ring)) ring.addTo(map);
    } else {
      ring.remove();
    }
    for (const li of document.querySelectorAll("#list li.sel")) li.classList.remove("sel");
    const li = document.querySelector(`#list li[data-id="${CSS.escape(id)}"]`);
    if (li) li.classList.add("sel");
  }

  async function select(id, fromMap) {
    ow.t.select = performance.now();
    ow.selected = id;
    highlight(id);
    const d = await api("api/alerts/" + encodeURIComponent(id)).catch((e) => ({ error: e.message }));
    if (ow.selected !== id) return;
    $("detail").hidden = false;  // floats over the map: the map keeps its size (no redraw)
    if (d.error) { $("d-title").textContent = "error: " + d.error; return; }
    const f = d.feature, pr = f.properties;
    if (!fromMap) map.panTo([f.geometry.coordinates[1], f.geometry.coordinates[0]]);
    $("d-title").textContent = `${pr.kind} · score ${Number(pr.score).toFixed(2)} · ${pr.alert_id}`;
    ow.t.detail = performance.now();
    const rows = [["acquired", pr.acquired], ["position", `${f.geometry.coordinates[1]}, ${f.geometry.coordinates[0]}`]];
    for (const [k, v] of Object.entries(pr)) {
      if (["kind", "score", "alert_id", "acquired"].includes(k)) continue;
      rows.push([k, v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v)]);
    }
    $("d-props").tBodies[0].replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
    const img = $("d-thumb");
    if (d.links.thumbnail) {
      img.hidden = false; $("d-nothumb").hidden = true;
      img.src = d.links.thumbnail;
    } else {
      img.hidden = true; img.removeAttribute("src"); $("d-nothumb").hidden = false;
    }
    renderDeliveries(id, d.deliveries);
    $("d-geojson").textContent = JSON.stringify(f, null, 2);
    $("d-geojson-link").href = d.links.geojson;
    $("d-cap-link").href = d.links.cap;
    $("d-ogc-link").href = d.links.ogc;
    $("d-cap").textContent = "loading…";
    fetch(d.links.cap).then((r) => r.text()).then((t) => { if (ow.selected === id) $("d-cap").textContent = t; });
  }

  function requeueButton(label, path, after) {
    const b = el("button", { type: "button" }, label);
    if (!info.writable) {
      b.disabled = true;
      b.title = "read-only console: start `orbitwatch ground web` with --token to enable requeue";
    }
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const r = await api(path, { method: "POST", headers: { Authorization: "Bearer " + token() } });
        b.textContent = `requeued ${r.requeued}`;
        after();
      } catch (e) {
        b.textContent = "refused";
        b.title = e.message;
        b.disabled = false;
      }
    });
    return b;
  }

  function renderDeliveries(id, rows) {
    $("d-nodeliv").hidden = rows.length > 0;
    $("d-deliv").tBodies[0].replaceChildren(...rows.map((r) => {
      const last = r.last_status ? `HTTP ${r.last_status}` : r.last_error || (r.delivered_at ? "ok" : "–");
      const action = r.state === "dead"
        ? requeueButton("requeue", `api/alerts/${encodeURIComponent(id)}/deliveries/${r.subscriber_id}/requeue`,
          () => { select(id, true); loadSubscribers(); })
        : "";
      return el("tr", {}, el("td", {}, r.subscriber), el("td", {}, el("span", { class: "state " + r.state },
        r.state === "dead" ? "dead-lettered" : r.state)), el("td", {}, r.attempts), el("td", { title: r.last_error || "" }, last),
        el("td", {}, action));
    }));
  }

  // --- subscribers -----------------------------------------------------------------------------------
  async function loadSubscribers() {
    try {
      const r = await api("api/subscribers");
      $("subs").tBodies[0].replaceChildren(...r.subscribers.map((s) => el("tr", { title: s.url },
        el("td", {}, s.name + (s.active ? "" : ` (disabled: ${s.disabled_reason || "?"})`)),
        el("td", {}, s.pending), el("td", {}, s.delivered), el("td", {}, s.dead),
        el("td", {}, s.dead ? requeueButton("requeue dead", `api/subscribers/${s.id}/requeue`, loadSubscribers) : ""))));
      $("subs-note").textContent = r.subscribers.length ? "" : "no subscribers (add one with `orbitwatch ground subscribe`)";
    } catch (e) { $("subs-note").textContent = "error: " + e.message; }
  }

  // --- wiring ------------------------------------------------------------------------------------------
  function wire() {
    $("filters").addEventListener("input", (e) => {
      if (e.target.id === "min-score") $("score-out").textContent = parseFloat(e.target.value).toFixed(2);
      if (e.target.id === "box" && $("area").value !== "box") return;
      reloadSoon();
    });
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); reloadSoon(0); });
    for (const b of document.querySelectorAll(".quick button")) {
      b.addEventListener("click", () => {
        const h = Number(b.dataset.hours);
        $("end").value = "";
        $("start").value = h ? new Date(Date.now() - h * 3600e3).toISOString().slice(0, 19) : "";
        reloadSoon(0);
      });
    }
    map.on("moveend", () => { if ($("area").value === "view") reloadSoon(); });
    $("close").addEventListener("click", () => { $("detail").hidden = true; ow.selected = null; highlight(null); });
    $("tab-alerts").addEventListener("click", () => tab("alerts"));
    $("tab-subs").addEventListener("click", () => { tab("subs"); loadSubscribers(); });
    $("token").value = token();
    $("token").addEventListener("change", () => sessionStorage.setItem("ow-token", $("token").value));
  }

  function tab(name) {
    $("tab-alerts").classList.toggle("active", name === "alerts");
    $("tab-subs").classList.toggle("active", name === "subs");
    $("pane-alerts").hidden = name !== "alerts";
    $("pane-subs").hidden = name !== "subs";
  }

  async function start() {
    ow.t.script = performance.now();
    try {
      info = await api("api/info");
    } catch (e) {
      $("summary").textContent = "cannot reach the API: " + e.message;
      ow.error = e.message;
      return;
    }
    document.title = info.title + " console";
    $("title").textContent = info.title;
    $("mode").textContent = info.writable ? "requeue enabled (token)" : "read-only";
    $("token-box").hidden = !info.writable;
    if (info.tiles) L.tileLayer(info.tiles, { maxZoom: 18 }).addTo(map);
    if (info.extent) {
      const [w, s, e, n] = info.extent.bbox;
      if (e - w < 300) map.fitBounds([[Math.max(s, -85), w], [Math.min(n, 85), e]], { maxZoom: 9, padding: [20, 20] });
    }
    graticule();
    wire();
    loadLand();
    await reload();
    loadSubscribers();
    setInterval(poll, info.poll_s * 1000);
    setInterval(() => { if (!$("pane-subs").hidden) loadSubscribers(); }, 15000);
  }

  start();
})();
