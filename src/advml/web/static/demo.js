// The advml demo page: select an image, attack it, defend it. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  dataset: null,
  offset: 0,
  image: null,      // what the attack and the defence start from: {ref, view}
  adversarial: null, // the last attack's answer
  defended: null,    // the last defence applied: {defence, strength}
};

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_err) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${detail} (HTTP ${response.status})`);
  }
  return body;
}

function post(path, payload) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
}

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

function busy(on) {
  for (const id of ["attack-btn", "defend-btn", "adaptive-btn", "more", "upload"]) {
    $(id).disabled = on || (id === "attack-btn" && !state.image)
      || (id === "defend-btn" && !state.image)
      || (id === "adaptive-btn" && !(state.image && state.defended));
  }
}

function pct(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;
}

// -- panels ------------------------------------------------------------------------------
function showView(panelId, view, badge) {
  const panel = $(panelId);
  const img = panel.querySelector("img");
  const label = panel.querySelector(".label");
  const badgeEl = panel.querySelector(".badge");
  const bars = panel.querySelector(".bars");
  if (!view) {
    img.removeAttribute("src");
    label.textContent = "–";
    badgeEl.textContent = "";
    badgeEl.className = "badge";
    bars.replaceChildren();
    return;
  }
  img.src = view.image;
  const conf = view.confidence === null ? "" : ` (${pct(view.confidence)})`;
  label.textContent = `${view.label_name}${conf}`;
  label.dataset.label = String(view.label);
  badgeEl.textContent = badge ? badge.text : "";
  badgeEl.className = badge ? `badge ${badge.kind}` : "badge";
  bars.replaceChildren();
  if (!view.confidences) return;
  const names = state.info.class_names;
  view.confidences.forEach((p, k) => {
    const top = k === view.label ? " top" : "";
    const name = document.createElement("span");
    name.className = `name${top}`;
    name.textContent = names[k] ?? String(k);
    const track = document.createElement("span");
    track.className = `track${top}`;
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${Math.max(0, Math.min(100, 100 * p))}%`;
    fill.style.display = "block";
    track.append(fill);
    const value = document.createElement("span");
    value.className = `value${top}`;
    value.textContent = pct(p);
    bars.append(name, track, value);
  });
}

function showPerturbation(perturbation) {
  const panel = $("panel-perturbation");
  const img = panel.querySelector("img");
  const mag = panel.querySelector(".magnification");
  const norms = panel.querySelector(".norms");
  if (!perturbation) {
    img.removeAttribute("src");
    mag.textContent = "";
    norms.textContent = "red: pixel made brighter, blue: darker";
    return;
  }
  img.src = perturbation.image;
  mag.textContent = `(magnified ×${perturbation.magnification.toFixed(1)})`;
  norms.textContent = `L∞ ${perturbation.linf.toFixed(3)} · L2 ${perturbation.l2.toFixed(2)} · `
    + `${perturbation.l0} values changed · red brighter, blue darker`;
}

function clearAfterOriginal() {
  state.adversarial = null;
  showView("panel-adversarial", null);
  showPerturbation(null);
  showView("panel-defended", null);
  showView("panel-adaptive", null);
  state.defended = null;
}

// -- step 1: choose ----------------------------------------------------------------------
async function loadGallery(append) {
  const name = $("dataset").value;
  if (!append) {
    state.offset = 0;
    $("gallery").replaceChildren();
  }
  state.dataset = name;
  const page = await api(`/api/datasets/${encodeURIComponent(name)}/images?offset=${state.offset}&limit=48`);
  $("gallery").classList.toggle("rows", Boolean(page.tabular));
  for (const item of page.images) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.index = String(item.index);
    button.setAttribute("role", "listitem");
    if (page.tabular) {
      // A tabular model: a table of its test rows (the features' values), not pictures.
      button.className = "thumb row";
      button.dataset.testid = "row";
      const shown = item.features.slice(0, 6).map((v) => v.toFixed(2)).join("  ");
      const more = item.features.length > 6 ? `  … (${item.features.length} features)` : "";
      button.textContent = `#${item.index}  ${item.label_name}:  ${shown}${more}`;
      button.title = `test row ${item.index}, true label ${item.label_name}: `
        + item.features.map((v) => v.toFixed(3)).join(", ");
    } else {
      button.className = "thumb";
      button.dataset.testid = "thumb";
      button.title = `test image ${item.index}, true label ${item.label_name}`;
      const img = document.createElement("img");
      img.src = item.image;
      img.alt = `image ${item.index}`;
      button.append(img);
    }
    button.addEventListener("click", () => selectImage(name, item.index, button));
    $("gallery").append(button);
  }
  state.offset = page.offset + page.images.length;
  $("more").hidden = state.offset >= page.total;
}

function markSelected(button) {
  for (const el of document.querySelectorAll(".thumb.selected")) el.classList.remove("selected");
  if (button) button.classList.add("selected");
}

async function selectImage(dataset, index, button) {
  markSelected(button);
  setStatus("Asking the model…", "busy");
  busy(true);
  try {
    const view = await api(`/api/datasets/${encodeURIComponent(dataset)}/images/${index}`);
    const correct = view.label === view.true_label;
    const badge = {
      text: correct ? "correct" : `wrong: it is ${view.true_label_name}`,
      kind: correct ? "good" : "bad",
    };
    state.image = { ref: { dataset, index }, view, badge };
    clearAfterOriginal();
    showView("panel-original", view, badge);
    setStatus(`The model says ${view.label_name} (${pct(view.confidence ?? 1)}). Now attack it.`);
  } catch (err) {
    setStatus(`Could not load the image: ${err.message}`, "error");
  } finally {
    busy(false);
  }
}

async function uploadFile() {
  const file = $("upload").files[0];
  if (!file) return;
  markSelected(null);
  setStatus(`Uploading ${file.name}…`, "busy");
  busy(true);
  try {
    const invert = $("invert").checked ? "true" : "false";
    const view = await api(`/api/upload?invert=${invert}`, { method: "POST", body: file });
    const badge = { text: `uploaded ${view.kind}`, kind: "good" };
    state.image = { ref: { pixels: view.pixels }, view, badge };
    clearAfterOriginal();
    showView("panel-original", view, badge);
    setStatus(`The model says ${view.label_name}. Now attack it.`);
  } catch (err) {
    setStatus(`Upload refused: ${err.message}`, "error");
  } finally {
    $("upload").value = "";
    busy(false);
  }
}

// -- step 2: attack ----------------------------------------------------------------------
function currentAttack() {
  return state.info.attacks.find((a) => a.name === $("attack").value);
}

function syncEps() {
  const attack = currentAttack();
  const strength = $("attack-strength").value;
  const row = $("eps-row");
  const slider = $("eps");
  $("attack-summary").textContent = attack.summary;
  const custom = $("attack-strength").querySelector("option[value=custom]");
  custom.disabled = !attack.has_eps;
  if (!attack.has_eps && strength === "custom") $("attack-strength").value = "medium";
  row.classList.toggle("disabled", !attack.has_eps);
  slider.disabled = !attack.has_eps;
  if (attack.has_eps && $("attack-strength").value !== "custom") {
    slider.value = String(attack.eps[$("attack-strength").value]);
  }
  $("eps-value").textContent = attack.has_eps ? Number(slider.value).toFixed(2) : "n/a";
}

async function runAttack() {
  if (!state.image) return;
  const attack = currentAttack();
  const strengthChoice = $("attack-strength").value;
  const payload = {
    image: state.image.ref,
    attack: attack.name,
    strength: strengthChoice === "custom" ? "medium" : strengthChoice,
  };
  if (attack.has_eps && strengthChoice === "custom") payload.eps = Number($("eps").value);
  setStatus(`Running ${attack.title}…`, "busy");
  busy(true);
  try {
    const result = await post("/api/attack", payload);
    state.adversarial = result;
    const fooled = result.label_changed;
    showView("panel-original", result.original, state.image.badge);
    showPerturbation(result.perturbation);
    showView("panel-adversarial", result.adversarial, {
      text: fooled ? "fooled" : "not fooled",
      kind: fooled ? "bad" : "good",
    });
    showView("panel-defended", null);
    setStatus(fooled
      ? `${attack.title} changed the label from ${result.original.label_name} to `
        + `${result.adversarial.label_name} in ${result.seconds.toFixed(2)} s. Now defend it.`
      : `${attack.title} did not change the label (${result.seconds.toFixed(2)} s); try a `
        + "higher strength.");
  } catch (err) {
    setStatus(`Attack failed: ${err.message}`, "error");
  } finally {
    busy(false);
  }
}

// -- step 3: defend ----------------------------------------------------------------------
async function runDefence() {
  if (!state.image) return;
  const name = $("defence").value;
  const payload = {
    image: state.adversarial ? { pixels: state.adversarial.adversarial.pixels } : state.image.ref,
    defence: name,
    strength: $("defence-strength").value,
    original: state.image.ref,
  };
  setStatus(`Applying ${name.replaceAll("_", " ")}…`, "busy");
  busy(true);
  try {
    const result = await post("/api/defend", payload);
    state.defended = { defence: name, strength: result.strength };
    showView("panel-adaptive", null);
    const restored = result.restored;
    showView("panel-defended", result.defended, {
      text: restored ? "label restored" : "still wrong",
      kind: restored ? "good" : "bad",
    });
    const what = state.adversarial ? "the adversarial image" : "the original";
    setStatus(`${name.replaceAll("_", " ")} (${result.strength}) on ${what}: the model now says `
      + `${result.defended.label_name}${restored ? ", the original's label" : ""}.`);
  } catch (err) {
    setStatus(`Defence failed: ${err.message}`, "error");
  } finally {
    busy(false);
  }
}

// -- step 4: the adaptive attack ---------------------------------------------------------
async function runAdaptive() {
  if (!state.image || !state.defended) return;
  const { defence, strength } = state.defended;
  const payload = { image: state.image.ref, defence, strength };
  const strengthAttack = $("attack-strength").value;
  if (strengthAttack === "custom") payload.eps = Number($("eps").value);
  else payload.attack_strength = strengthAttack;
  setStatus(`Attacking through ${defence.replaceAll("_", " ")}…`, "busy");
  busy(true);
  try {
    const result = await post("/api/adaptive", payload);
    const broken = result.defence_broken;
    showView("panel-adaptive", { ...result.defended, image: result.adversarial.image }, {
      text: broken ? "defence broken" : "defence held",
      kind: broken ? "bad" : "good",
    });
    setStatus(`PGD through ${defence.replaceAll("_", " ")} (${result.method}), `
      + `eps ${result.settings.eps.toFixed(2)}: after the defence the model says `
      + `${result.defended.label_name}`
      + (broken ? ` instead of ${result.original.label_name}: the defence only hid the `
        + "gradients." : `, still ${result.original.label_name}: this defence held here.`));
  } catch (err) {
    setStatus(`Adaptive attack failed: ${err.message}`, "error");
  } finally {
    busy(false);
  }
}

// -- start -------------------------------------------------------------------------------
async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    setStatus(`The server did not answer: ${err.message}`, "error");
    return;
  }
  const info = state.info;
  $("model-info").textContent = `Model: ${info.model} · trained on ${info.dataset} · `
    + `input ${info.input_shape.join("×")} · each request is limited to `
    + `${info.timeout_seconds} s.`;
  for (const a of info.attacks) {
    const option = new Option(a.title, a.name);
    option.disabled = Boolean(a.unavailable);
    if (a.unavailable) option.title = a.unavailable;
    $("attack").append(option);
  }
  $("attack").value = info.attacks.find((a) => a.name === "pgd" && !a.unavailable)
    ? "pgd" : (info.attacks.find((a) => !a.unavailable) || info.attacks[0]).name;
  for (const d of info.defences) {
    const option = new Option(d.name.replaceAll("_", " "), d.name);
    option.disabled = Boolean(d.unavailable);
    $("defence").append(option);
  }
  const firstDefence = info.defences.find((d) => d.name === "median_smoothing" && !d.unavailable)
    || info.defences.find((d) => !d.unavailable) || info.defences[0];
  $("defence").value = firstDefence.name;
  const datasets = await api("/api/datasets");
  for (const d of datasets) {
    const suffix = d.model_dataset ? " (the model's data)" : " (resized)";
    $("dataset").append(new Option(`${d.name}${suffix}`, d.name));
  }
  $("dataset").value = info.dataset;

  const syncDefence = () => {
    const d = info.defences.find((x) => x.name === $("defence").value);
    $("defence-summary").textContent = d ? d.summary : "";
  };
  $("dataset").addEventListener("change", () => loadGallery(false).catch(
    (err) => setStatus(`Could not load the gallery: ${err.message}`, "error")));
  $("more").addEventListener("click", () => loadGallery(true).catch(
    (err) => setStatus(`Could not load more images: ${err.message}`, "error")));
  $("upload").addEventListener("change", uploadFile);
  $("attack").addEventListener("change", syncEps);
  $("attack-strength").addEventListener("change", syncEps);
  $("eps").addEventListener("input", () => {
    $("attack-strength").value = "custom";
    $("eps-value").textContent = Number($("eps").value).toFixed(2);
  });
  $("defence").addEventListener("change", syncDefence);
  $("attack-btn").addEventListener("click", runAttack);
  $("defend-btn").addEventListener("click", runDefence);
  $("adaptive-btn").addEventListener("click", runAdaptive);
  syncEps();
  syncDefence();
  try {
    await loadGallery(false);
  } catch (err) {
    setStatus(`Could not load the gallery: ${err.message}`, "error");
    return;
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
