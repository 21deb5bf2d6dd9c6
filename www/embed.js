// attnscope widgets for lesson pages: one script tag, then elements such as
//
//   <script src="https://YOUR-ATTNSCOPE/embed.js"></script>
//   <attnscope-view text="The cat sat on the mat" view="weights" layer="0" head="2"
//                   mask="causal" height="360"></attnscope-view>
//   <attnscope-view view="diff" text="The cat sat on the mat" text-b="The dog sat on the mat"
//                   layer="1" head="2"></attnscope-view>
//
// Each element shows one view of the model running on its text, in an iframe of
// the app in embed mode (`?embed=1`, the state in the fragment as in a shared
// link), with an "open in attnscope" link. Widgets of one page share one model
// download (index.html's attnscopeFetch). Attributes are checked here; a bad one
// gets a visible message in the widget and is left out. Nothing from an
// attribute is ever parsed as markup: messages are text nodes and values reach
// the app percent-encoded in the fragment; a text with a lone surrogate (half
// of a UTF-16 pair, which no URL can carry) is shown with U+FFFD in its place
// and a message, never an uncaught URIError.
//
// The checks are one pure function, `settings(attributes)`; outside a browser
// (no customElements: node's vm, for tests/e2e/embed_checks.test.mjs) the
// script only sets globalThis.attnscopeEmbedSettings to it.
(() => {
  'use strict';

  const VIEWS = ['q', 'k', 'v', 'raw', 'scores', 'scaled', 'masked', 'weights', 'softmax', 'attention', 'out',
    'output', 'heads', 'grid', 'residual', 'next', 'tokens', 'diff'];
  // text-b: the second prompt of view="diff" (the text is A).
  const ATTRIBUTES = ['text', 'text-b', 'view', 'layer', 'head', 'mask', 'height', 'theme', 'model'];
  const MAX_TEXT = 4000;
  const DEFAULTS = { text: 'The cat sat on the mat because it was tired.', view: 'weights', height: 360 };

  const index = (name, value) => (/^\d{1,4}$/.test(value) ? null
    : `${name}="${value}" is not a ${name} number (0, 1, 2, ...); it is left out.`);
  /** Index of the first lone surrogate in `v`, or -1. */
  const loneSurrogate = (v) => {
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        const next = v.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) { i++; continue; }
        return i;
      }
      if (c >= 0xdc00 && c <= 0xdfff) return i;
    }
    return -1;
  };
  /** `v` with every lone surrogate replaced by U+FFFD (String.prototype.toWellFormed). */
  const wellFormed = (v) => v.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

  const CHECKS = {
    text: (v) => (v.length > MAX_TEXT ? `text is ${v.length} characters; the widget takes at most ${MAX_TEXT}.` : null),
    'text-b': (v) => (v.length > MAX_TEXT ? `text-b is ${v.length} characters; the widget takes at most ${MAX_TEXT}.` : null),
    view: (v) => (VIEWS.includes(v) ? null : `view="${v}" is not a view; use one of: ${VIEWS.join(', ')}.`),
    layer: (v) => index('layer', v),
    head: (v) => index('head', v),
    mask: (v) => (/^(causal|bidirectional|window:([1-9]\d{0,3}))$/.test(v) ? null
      : `mask="${v}" is not a mask; use causal, bidirectional or window:N (N >= 1).`),
    height: (v) => (/^\d{2,4}$/.test(v) && +v >= 120 && +v <= 4000 ? null
      : `height="${v}" is not a height in pixels (120 to 4000); 360 is used.`),
    theme: (v) => (['auto', 'dark', 'light'].includes(v) ? null : `theme="${v}" is not auto, dark or light.`),
    // A preset, a hub repo (org/name[@revision]) or an http(s) URL; the app reads it (src/model/source.rs).
    model: (v) => (/^(https?:\/\/[^\s"'<>#]{1,2000}|[A-Za-z0-9][A-Za-z0-9._\-/@]{0,300})$/.test(v) ? null
      : `model="${v}" is not a model name: use a preset (gpt2, smollm2-135m, …), org/name or an https:// URL.`),
  };

  /**
   * The fragment the app restores, the frame height and the messages for what
   * was left out, from the element's attributes as [name, value] pairs. Never
   * throws; the fragment is ASCII.
   */
  const settings = (attributes) => {
    const problems = [];
    const given = new Map();
    for (const [name, v] of attributes) {
      const known = ATTRIBUTES.includes(name) || ['id', 'class', 'style', 'title', 'hidden', 'slot'].includes(name)
        || name.startsWith('data-') || name.startsWith('aria-');
      if (!known) problems.push(`"${wellFormed(name)}" is not an attnscope-view attribute; it takes ${ATTRIBUTES.join(', ')}.`);
      else if (ATTRIBUTES.includes(name)) given.set(name, String(v));
    }
    const value = (name) => {
      if (!given.has(name)) return null;
      const raw = given.get(name);
      const v = name === 'text' || name === 'text-b' ? raw : raw.trim();
      const problem = CHECKS[name](v);
      if (problem) { problems.push(wellFormed(problem)); return null; }
      return v;
    };
    const fields = [];
    /** A text attribute, well-formed (a lone surrogate is named and replaced). */
    const prose = (name, fallback) => {
      const v = value(name) ?? fallback;
      const lone = v === null ? -1 : loneSurrogate(v);
      if (lone < 0) return v;
      problems.push(`${name} holds half of a UTF-16 surrogate pair at position ${lone}, which is not a character; it is shown as \ufffd.`);
      return wellFormed(v);
    };
    fields.push(['text', prose('text', DEFAULTS.text)]);
    const view = value('view') ?? DEFAULTS.view;
    fields.push(['view', view]);
    // The page's link calls prompt B `diff`.
    const textB = prose('text-b', null);
    if (textB !== null && textB !== '') fields.push(['diff', textB]);
    else if (view === 'diff') problems.push('view="diff" compares text with a second prompt: give it as text-b="…".');
    for (const name of ['layer', 'head', 'mask', 'theme', 'model']) {
      const v = value(name);
      if (v !== null) fields.push([name, v]);
    }
    const height = value('height');
    const fragment = fields.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    return { fragment, height: height === null ? DEFAULTS.height : +height, problems };
  };

  if (typeof customElements === 'undefined') {
    globalThis.attnscopeEmbedSettings = settings;
    return;
  }
  if (customElements.get('attnscope-view')) return;
  const script = document.currentScript;
  const APP = new URL('./', script ? script.src : location.href).href;

  const STYLE = `
    :host { display: block; margin: 1em 0; }
    .box { border: 1px solid #8884; border-radius: 10px; overflow: hidden; background: #111318; }
    iframe { display: block; width: 100%; border: 0; }
    .messages { font: 13px/1.4 system-ui, sans-serif; background: #fdecee; color: #6b1020; padding: 6px 10px; }
    .messages:empty { display: none; }
    .messages p { margin: 2px 0; }
  `;

  class AttnscopeView extends HTMLElement {
    static get observedAttributes() { return ATTRIBUTES; }

    constructor() {
      super();
      const root = this.attachShadow({ mode: 'open' });
      const style = document.createElement('style');
      style.textContent = STYLE;
      const box = document.createElement('div');
      box.className = 'box';
      this.messages = document.createElement('div');
      this.messages.className = 'messages';
      this.messages.setAttribute('role', 'alert');
      this.frame = document.createElement('iframe');
      this.frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-popups allow-popups-to-escape-sandbox');
      box.append(this.messages, this.frame);
      root.append(style, box);
    }

    connectedCallback() { this.render(); }
    attributeChangedCallback() { if (this.isConnected) this.render(); }

    render() {
      let fragment, height, problems;
      try {
        ({ fragment, height, problems } = settings(this.getAttributeNames().map((n) => [n, this.getAttribute(n)])));
      } catch (e) {
        // Not expected (settings never throws); if it does, say so in the widget, never only in the console.
        ({ fragment, height, problems } = { fragment: '', height: DEFAULTS.height, problems: [`the widget could not read its attributes (${e}).`] });
      }
      this.messages.replaceChildren(...problems.map((text) => {
        const p = document.createElement('p');
        p.textContent = `attnscope: ${text}`;
        return p;
      }));
      this.frame.style.height = `${height}px`;
      this.frame.title = `attnscope: ${this.getAttribute('view') || DEFAULTS.view} of "${wellFormed((this.getAttribute('text') || DEFAULTS.text).slice(0, 60))}"`;
      const src = `${APP}?embed=1#${fragment}`;
      if (this.frame.getAttribute('src') !== src) this.frame.setAttribute('src', src);
    }
  }

  customElements.define('attnscope-view', AttnscopeView);
})();
