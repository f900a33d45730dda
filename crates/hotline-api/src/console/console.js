// The operator's and clerk's console. Every string shown comes from the
// catalogue of the chosen language (/console/i18n/*.json); every word sent
// comes from the service's vocabulary (/console/vocabulary.json). The
// Individual Number lives only in its input field: never in a URL, in
// browser storage or in the console's log.

const $ = (id) => document.getElementById(id);
const LANGUAGE_KEY = "hotline.console.language";
// Sent on every request: a cross-site form cannot set a header, so the
// service refuses cookie-authenticated changes without it.
const CONSOLE_HEADER = { "X-Hotline-Console": "1" };
const REFERENCE = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

let catalogue = {};
let vocabulary = { items: [], causes: [], languages: [], identity_documents: [] };
let person = null;
// The rules in force as the server's clock has them, and where the local clock stood when read.
let rules = null;
let rulesReadAt = 0;
let holder = null;
let callNonce = "";
let pending = null;
// When the person last pressed a key or clicked: past the idle timeout the
// page asks the service whether the session still stands, and signs out if not.
let lastActivity = performance.now();
// This session's calls, for call-backs: kept in the tab's sessionStorage
// (references and states only, never the number) so a reload keeps them.
const CALLS_KEY = "hotline.console.calls";
const calls = [];

function t(key, params = {}) {
  const text = catalogue[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

function show(id, visible) {
  $(id).hidden = !visible;
}

function say(id, text, kind = "") {
  const element = $(id);
  element.textContent = text;
  element.className = kind;
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...CONSOLE_HEADER, ...headers }, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (response.status === 401 && person) {
    signedOut(true);
  }
  return { status: response.status, data };
}

// ---- language ----------------------------------------------------------

async function useLanguage(language) {
  const response = await fetch(`/console/i18n/${language}.json`, { cache: "no-store" });
  catalogue = await response.json();
  localStorage.setItem(LANGUAGE_KEY, language);
  document.documentElement.lang = language;
  document.title = t("title");
  $("ui-language").value = language;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  fillLanguages();
  fillDocuments();
  renderLine();
  renderWho();
  if (holder) renderItems();
  renderCalls();
}

function initialLanguage() {
  const kept = localStorage.getItem(LANGUAGE_KEY);
  if (kept === "ja" || kept === "en") return kept;
  return navigator.language.startsWith("ja") ? "ja" : "en";
}

// ---- time, always JST ----------------------------------------------------

function serverNow() {
  return rules ? new Date(Date.parse(rules.now) + (performance.now() - rulesReadAt)) : new Date();
}

function jstTime(instant) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Tokyo", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(instant);
}

function jstDateTime(instant) {
  const format = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  return format.format(instant);
}

function timeLeft(until) {
  const minutes = Math.max(0, Math.ceil((until - serverNow()) / 60000));
  const h = Math.floor(minutes / 60);
  return h > 0 ? t("duration", { h, m: minutes % 60 }) : t("duration_minutes", { m: minutes });
}

// ---- the line: what is accepted now --------------------------------------

async function readRules() {
  const { status, data } = await api("GET", "/v1/rules/now");
  if (status === 200) {
    rules = data;
    rulesReadAt = performance.now();
    renderLine();
    fillLanguages();
    if (holder) renderItems();
  }
}

function renderLine() {
  if (!rules) return;
  const night = rules.mode === "night";
  say("line-mode", t(night ? "line_night" : "line_day"), night ? "night" : "day");
  const next = rules.next_change_at ? new Date(rules.next_change_at) : null;
  $("line-next").textContent = next ? t("line_next", { time: jstTime(next), left: timeLeft(next) }) : "";
  const staffed = rules.staffed_languages.map((l) => t(`lang_${l}`)).join(", ");
  $("line-staffed").textContent = t("staffed", { languages: staffed });
}

function accepted(item) {
  return rules && rules.accepted_items.includes(item);
}

// ---- signing in and out --------------------------------------------------

function renderWho() {
  $("who").textContent = person ? t("signed_in_as", { name: person.name, role: t(`role_${person.role}`) }) : "";
  show("sign-out", Boolean(person));
}

function enter(session) {
  person = session;
  renderWho();
  show("sign-in", false);
  const operator = person.role === "operator" || person.role === "supervisor";
  show("operator", operator);
  show("clerk", person.role === "clerk");
  readRules();
  if (operator) {
    restoreCalls();
    renderCalls();
    newCall();
  } else {
    $("find-reference").focus();
  }
}

function signedOut(idle) {
  person = null;
  calls.length = 0;
  sessionStorage.removeItem(CALLS_KEY);
  holder = null;
  $("number").value = "";
  renderWho();
  show("operator", false);
  show("clerk", false);
  show("sign-in", true);
  say("sign-in-notice", idle ? t("signed_out_idle") : "");
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  $("token").value = "";
  const { status, data } = await api("POST", "/console/session", { token });
  if (status === 200 && data.signed_in) {
    say("sign-in-error", "");
    enter(data);
  } else {
    say("sign-in-error", t("sign_in_refused"), "error");
    $("token").focus();
  }
}

async function signOut() {
  await api("DELETE", "/console/session");
  signedOut(false);
}

// ---- the call --------------------------------------------------------------

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function newCall() {
  callNonce = randomHex(8);
  holder = null;
  pending = null;
  for (const id of ["call-id", "number", "birth", "police"]) $(id).value = "";
  $("number").classList.remove("masked");
  for (const id of ["call-id-message", "number-message", "birth-message", "identify-message", "suspend-message"]) say(id, "");
  show("report-form", false);
  show("result", false);
  show("retry", false);
  $("call-id").focus();
}

function fillLanguages() {
  const select = $("caller-language");
  const chosen = select.value;
  const staffed = rules ? rules.staffed_languages : [];
  const ordered = [...staffed, ...vocabulary.languages.filter((l) => !staffed.includes(l))];
  select.replaceChildren(
    ...ordered.map((language) => {
      const option = new Option(t(`lang_${language}`) + (staffed.includes(language) ? ` (${t("staffed_mark")})` : ""), language);
      return option;
    }),
  );
  if (chosen) select.value = chosen;
}

// The check digit of the Individual Number (MIC ordinance No. 85 of 2014, art. 5), as the service checks it.
function checkDigit(first11) {
  let sum = 0;
  for (let n = 1; n <= 11; n++) {
    const p = Number(first11[11 - n]);
    const q = n <= 6 ? n + 1 : n - 5;
    sum += p * q;
  }
  const remainder = sum % 11;
  return remainder <= 1 ? 0 : 11 - remainder;
}

function numberProblem(value) {
  if (!/^\d*$/.test(value)) return "number_bad_digits";
  if (value.length < 12) return "number_incomplete";
  if (checkDigit(value.slice(0, 11)) !== Number(value[11])) return "number_bad_check";
  return null;
}

function checkNumber() {
  const value = $("number").value;
  const problem = numberProblem(value);
  if (problem === null) {
    say("number-message", t("number_ok"), "ok");
  } else {
    say("number-message", t(problem, { n: value.length }), problem === "number_incomplete" ? "" : "error");
  }
  return problem === null;
}

function validBirth(value) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value);
}

function validCallId(value) {
  return value.length >= 1 && value.length <= 128 && /^[\x21-\x7e]+$/.test(value);
}

async function identify(event) {
  event.preventDefault();
  const callId = $("call-id").value.trim();
  const birth = $("birth").value.trim();
  const callOk = validCallId(callId);
  const numberOk = checkNumber();
  const birthOk = validBirth(birth);
  say("call-id-message", callOk ? "" : t("call_id_bad"), "error");
  say("birth-message", birthOk ? "" : t("date_bad"), "error");
  if (!callOk || !numberOk || !birthOk) {
    say("identify-message", "");
    (!callOk ? $("call-id") : !numberOk ? $("number") : $("birth")).focus();
    return;
  }
  $("identify").disabled = true;
  say("identify-message", t("identifying"));
  try {
    const body = { call_id: callId, holder: { individual_number: $("number").value, date_of_birth: birth } };
    const { status, data } = await api("POST", "/v1/holders/identify", body);
    if (status === 200 && data.found) {
      holder = data;
      say("identify-message", t("holder_found"), "ok");
      renderItems();
      show("report-form", true);
      const first = document.querySelector("#items input:not(:disabled)");
      if (first) {
        first.checked = true;
        first.focus();
      }
    } else if (status === 200) {
      holder = null;
      show("report-form", false);
      say("identify-message", t("holder_not_found"), "error");
    } else if (status !== 401) {
      say("identify-message", t("failed_server", { code: data?.code ?? status }), "error");
    }
  } catch {
    say("identify-message", t("failed_network"), "error");
  } finally {
    $("identify").disabled = false;
  }
}

// ---- what was lost -----------------------------------------------------------

function choices() {
  const list = [];
  if (holder.card) list.push({ item: "card", label: t("item_card"), heldBy: holder.card.held_by });
  for (const phone of holder.smartphones) {
    list.push({ item: "smartphone", device: phone.device_id, label: t("item_smartphone", { label: phone.label }), heldBy: phone.held_by });
  }
  for (const item of ["notification_card", "number_notice"]) {
    if (holder.card) list.push({ item, label: t(`item_${item}`), heldBy: null });
  }
  return list.filter((c) => vocabulary.items.includes(c.item));
}

function renderItems() {
  const chosen = document.querySelector("#items input:checked")?.value;
  const next = rules?.next_change_at ? new Date(rules.next_change_at) : null;
  const rows = choices().map((choice, index) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "item";
    input.value = `${choice.item}:${choice.device ?? ""}`;
    input.id = `item-${index}`;
    const refused = !accepted(choice.item);
    input.disabled = refused || Boolean(choice.heldBy);
    label.append(input, ` ${choice.label}`);
    if (choice.heldBy) {
      label.className = "held";
      label.append(Object.assign(document.createElement("span"), { className: "why", textContent: t("already_held", { reference: choice.heldBy }) }));
    } else if (refused) {
      label.className = "refused";
      const why = next ? t("refused_now", { time: jstTime(next), left: timeLeft(next) }) : "";
      label.append(Object.assign(document.createElement("span"), { className: "why", textContent: why }));
    }
    return label;
  });
  $("items").replaceChildren(...rows);
  if (chosen) {
    const again = document.querySelector(`#items input[value="${CSS.escape(chosen)}"]:not(:disabled)`);
    if (again) again.checked = true;
  }
}

// ---- suspending, exactly once ---------------------------------------------------

function reportBody() {
  const [item, device] = document.querySelector("#items input:checked")?.value.split(":") ?? [];
  if (!item) return null;
  const body = {
    call_id: $("call-id").value.trim(),
    language: $("caller-language").value,
    item,
    cause: $("cause").value,
    holder: { individual_number: $("number").value, date_of_birth: $("birth").value.trim() },
  };
  if (device) body.device_id = device;
  const police = $("police").value.trim();
  if (police) body.police_report_number = police;
  // One key per call and choice: a second Enter, a double click or a retry sends the same key.
  const key = `console-${callNonce}-${item}-${device || "none"}-${body.cause}`;
  return { key, body };
}

async function suspend(event) {
  event?.preventDefault();
  if (pending) return;
  const request = reportBody();
  if (!request) return;
  pending = request;
  await send(request);
}

async function retry() {
  if (pending) await send(pending);
}

async function send(request) {
  const button = $("suspend");
  button.disabled = true;
  button.textContent = t("suspending");
  show("retry", false);
  say("suspend-message", "");
  try {
    const { status, data } = await api("POST", "/v1/suspensions", request.body, { "Idempotency-Key": request.key });
    if (status === 201 || status === 200) {
      pending = null;
      showResult(data);
    } else if (status === 409 && data?.code === "outside_reception_hours") {
      pending = null;
      const next = new Date(data.next_accepted_at);
      say("suspend-message", t("refused_now", { time: jstTime(next), left: timeLeft(next) }), "error");
      readRules();
    } else if (status >= 500 || status === 408) {
      say("suspend-message", t("failed_server", { code: data?.code ?? status }), "error");
      show("retry", true);
      $("retry").focus();
    } else {
      pending = null;
      say("suspend-message", refusal(data, status), "error");
    }
  } catch {
    say("suspend-message", t("failed_network"), "error");
    show("retry", true);
    $("retry").focus();
  } finally {
    button.disabled = false;
    button.textContent = t("suspend");
  }
}

// A refusal in the console's language, from the problem's stable code (the service's own title is English).
function refusal(problem, status) {
  const code = problem?.code ?? String(status);
  if (code === "validation_failed") {
    return t("problem_validation_failed", { fields: (problem.errors ?? []).map((e) => e.field).join(", ") });
  }
  return catalogue[`problem_${code}`] ? t(`problem_${code}`) : t("problem_other", { code });
}

function certificateLine(certificate) {
  return `${t(`kind_${certificate.kind}`)} (${t(`medium_${certificate.medium}`)}): ${t(`status_${certificate.status}`)}`;
}

function showResult(receipt) {
  $("reference").textContent = receipt.reference;
  say("result-note", receipt.status === "already_suspended" ? t("already_suspended_note") : "");
  $("held").replaceChildren(...receipt.certificates.map((c) => Object.assign(document.createElement("li"), { textContent: certificateLine(c) })));
  show("report-form", false);
  show("result", true);
  let call = calls.find((c) => c.id === receipt.id);
  if (!call) {
    call = { id: receipt.id, at: new Date(receipt.decided_at), callId: $("call-id").value.trim(), item: receipt.item, reference: receipt.reference, caSync: receipt.ca_sync };
    calls.unshift(call);
    keepCalls();
  }
  renderCaSync("ca-sync", call.caSync);
  renderCalls();
  // Not "New call": a second Enter pressed in a hurry must not clear the reference being read out.
  $("copy").focus();
  followCaSync(call);
}

function renderCaSync(id, state) {
  say(id, t(`ca_${state}`), state === "failed" ? "error" : state === "confirmed" ? "ok" : "");
}

async function followCaSync(call) {
  for (let i = 0; i < 600 && call.caSync === "pending" && person; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      const { status, data } = await api("GET", `/v1/suspensions/${encodeURIComponent(call.id)}`);
      if (status === 200 && data.ca_sync !== call.caSync) {
        call.caSync = data.ca_sync;
        keepCalls();
      }
    } catch {
      // A moment without the network: the next look is a second away.
    }
    if ($("reference").textContent === call.reference) renderCaSync("ca-sync", call.caSync);
    renderCalls();
  }
}

function keepCalls() {
  const kept = calls.map(({ id, at, callId, item, reference, caSync }) => ({ id, at: at.toISOString(), callId, item, reference, caSync }));
  sessionStorage.setItem(CALLS_KEY, JSON.stringify(kept));
}

function restoreCalls() {
  const kept = JSON.parse(sessionStorage.getItem(CALLS_KEY) ?? "[]");
  calls.splice(0, calls.length, ...kept.map((c) => ({ ...c, at: new Date(c.at) })));
  for (const call of calls) followCaSync(call);
}

function renderCalls() {
  show("no-calls", calls.length === 0);
  $("calls").replaceChildren(
    ...calls.map((call) => {
      const row = document.createElement("tr");
      const cells = [jstDateTime(call.at), call.callId, t(`item_${call.item}`, { label: "" }), call.reference, t(`ca_${call.caSync}`)];
      for (const [index, text] of cells.entries()) {
        row.append(Object.assign(document.createElement("td"), { textContent: text, className: index === 3 ? "ref" : "" }));
      }
      return row;
    }),
  );
}

async function copyReference() {
  await navigator.clipboard.writeText($("reference").textContent).catch(() => {});
  $("copy").textContent = t("copied");
  setTimeout(() => ($("copy").textContent = t("copy")), 2000);
}

// ---- the clerk's release -----------------------------------------------------------

let found = null;
let releaseKey = "";

function fillDocuments() {
  const kept = new Set([...document.querySelectorAll("#documents input:checked")].map((i) => i.value));
  const boxes = vocabulary.identity_documents.map((doc) => {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { type: "checkbox", value: doc, id: `doc-${doc}`, checked: kept.has(doc) });
    label.append(input, ` ${t(`doc_${doc}`)}`);
    return label;
  });
  $("documents").replaceChildren(Object.assign(document.createElement("legend"), { textContent: t("documents") }), ...boxes);
}

function renderFound() {
  $("found-reference").textContent = found.reference;
  $("found-state").textContent = t(`state_${found.status}`);
  $("found-since").textContent = found.released_at
    ? t("released_at", { time: jstDateTime(new Date(found.released_at)) })
    : t("suspended_since", { time: jstDateTime(new Date(found.decided_at)) });
  $("found-certificates").replaceChildren(...found.certificates.map((c) => Object.assign(document.createElement("li"), { textContent: certificateLine(c) })));
  renderCaSync("found-ca-sync", found.ca_sync);
  $("release").disabled = found.status !== "suspended";
}

async function find(event) {
  event.preventDefault();
  const reference = $("find-reference").value.trim().toUpperCase();
  show("release-form", false);
  say("release-message", "");
  if (!REFERENCE.test(reference)) {
    say("find-message", t("reference_bad"), "error");
    return;
  }
  const { status, data } = await api("GET", `/v1/suspensions/${encodeURIComponent(reference)}`);
  if (status === 200) {
    say("find-message", "");
    found = data;
    releaseKey = `console-release-${data.id}-${randomHex(4)}`;
    renderFound();
    show("release-form", true);
    $("documents").querySelector("input")?.focus();
  } else if (status === 404) {
    say("find-message", t("suspension_not_found"), "error");
  } else if (status !== 401) {
    say("find-message", t("failed_server", { code: data?.code ?? status }), "error");
  }
}

async function release(event) {
  event.preventDefault();
  const documents = [...document.querySelectorAll("#documents input:checked")].map((i) => i.value);
  if (documents.length === 0) {
    say("release-message", t("documents_required"), "error");
    return;
  }
  const body = { documents_checked: documents };
  const note = $("release-note").value.trim();
  if (note) body.note = note;
  $("release").disabled = true;
  $("release").textContent = t("releasing");
  try {
    const path = `/v1/suspensions/${encodeURIComponent(found.id)}/release`;
    const { status, data } = await api("POST", path, body, { "Idempotency-Key": releaseKey });
    if (status === 200) {
      found = data;
      renderFound();
      say("release-message", `${t("released")} ${t("release_words")}`, "ok");
    } else if (status === 409) {
      say("release-message", t("already_released"), "error");
    } else if (status !== 401) {
      say("release-message", t("failed_server", { code: data?.code ?? status }), "error");
    }
  } catch {
    say("release-message", t("failed_network"), "error");
  } finally {
    $("release").textContent = t("release");
    if (found.status === "suspended") $("release").disabled = false;
  }
}

// ---- start ---------------------------------------------------------------------

async function start() {
  vocabulary = await (await fetch("/console/vocabulary.json", { cache: "no-store" })).json();
  await useLanguage(initialLanguage());
  $("ui-language").addEventListener("change", (e) => useLanguage(e.target.value));
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("generate-call").addEventListener("click", () => {
    $("call-id").value = `call-${randomHex(6)}`;
    $("caller-language").focus();
  });
  $("number").addEventListener("input", checkNumber);
  $("number").addEventListener("blur", () => $("number").classList.toggle("masked", $("number").value.length > 0));
  $("number").addEventListener("focus", () => $("number").classList.remove("masked"));
  $("identify-form").addEventListener("submit", identify);
  $("report-form").addEventListener("submit", suspend);
  $("retry").addEventListener("click", retry);
  $("copy").addEventListener("click", copyReference);
  $("new-call").addEventListener("click", newCall);
  $("find-form").addEventListener("submit", find);
  $("release-form").addEventListener("submit", release);
  for (const event of ["keydown", "pointerdown"]) {
    document.addEventListener(event, () => (lastActivity = performance.now()), { capture: true });
  }
  setInterval(async () => {
    if (person && performance.now() - lastActivity > person.idle_timeout_s * 1000) {
      const { data } = await api("GET", "/console/session");
      if (!data?.signed_in) signedOut(true);
    }
  }, 10000);
  setInterval(() => {
    renderLine();
    // Past the next change, the rules are read again (the server's clock decides).
    if (person && rules?.next_change_at && serverNow() >= new Date(rules.next_change_at)) readRules();
  }, 15000);
  const { data } = await api("GET", "/console/session");
  if (data?.signed_in) enter(data);
  else signedOut(false);
}

start();
