/*
 * Embeddable chat widget. Add to any page:
 *   <script src="https://gateway.example.com/webhooks/<channel-id>/widget.js" async></script>
 * Options as data attributes on the script tag: data-title, data-open="true" (start opened),
 * data-container="<element id>" (render inline instead of a floating bubble).
 *
 * It keeps the visitor token and the last message id it saw in localStorage, reconnects with backoff, asks for the
 * replies it missed, and resends messages the gateway has not acknowledged yet. The token is dropped (a new visitor
 * starts) only when the gateway says it is no longer valid: close code 4401; an outage keeps the visitor.
 */
(function () {
  'use strict';
  var script = document.currentScript || document.querySelector('script[src*="/widget.js"]');
  var src = new URL(script.src, location.href);
  var base = src.pathname.replace(/\/widget\.js$/, '');
  var channel = base.split('/').pop();
  var wsUrl = (src.protocol === 'https:' ? 'wss://' : 'ws://') + src.host + base + '/ws';
  var store = {
    get: function (k) { try { return localStorage.getItem('gw.' + channel + '.' + k); } catch (e) { return null; } },
    set: function (k, v) { try { localStorage.setItem('gw.' + channel + '.' + k, v); } catch (e) {} },
    del: function (k) { try { localStorage.removeItem('gw.' + channel + '.' + k); } catch (e) {} },
  };
  var title = script.getAttribute('data-title') || 'Chat with us';
  var pending = {}; // clientMessageId -> frame, until acknowledged
  var seen = {};
  var ws = null;
  var retry = 0;
  var TOKEN_REFUSED = 4401; // close code: the visitor token is not valid (error frame invalid_token/expired_token)

  var css =
    '.gw-root{font:14px/1.4 system-ui,sans-serif;color:#1d1d1f}' +
    '.gw-float{position:fixed;right:20px;bottom:20px;z-index:2147483000}' +
    '.gw-bubble{width:56px;height:56px;border-radius:50%;border:0;background:#2563eb;color:#fff;font-size:24px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.2)}' +
    '.gw-panel{width:340px;height:460px;background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.2);display:flex;flex-direction:column;overflow:hidden}' +
    '.gw-inline .gw-panel{width:100%;height:100%;box-shadow:none;border:1px solid #ddd}' +
    '.gw-head{background:#2563eb;color:#fff;padding:12px 14px;font-weight:600;display:flex;justify-content:space-between}' +
    '.gw-status{font-weight:400;font-size:12px;opacity:.85}' +
    '.gw-log{flex:1;overflow-y:auto;padding:12px;background:#f6f7f9}' +
    '.gw-msg{max-width:80%;margin:6px 0;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word}' +
    '.gw-in{background:#2563eb;color:#fff;margin-left:auto;border-bottom-right-radius:3px}' +
    '.gw-out{background:#fff;border:1px solid #e3e5e8;border-bottom-left-radius:3px}' +
    '.gw-form{display:flex;border-top:1px solid #e3e5e8}' +
    '.gw-form input{flex:1;border:0;padding:12px;font:inherit;outline:none}' +
    '.gw-form button{border:0;background:none;color:#2563eb;font-weight:600;padding:0 14px;cursor:pointer}';

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var root = el('div', 'gw-root');
  var style = el('style');
  style.textContent = css;
  var panel = el('div', 'gw-panel');
  var head = el('div', 'gw-head');
  var status = el('span', 'gw-status', 'connecting…');
  head.appendChild(el('span', '', title));
  head.appendChild(status);
  var log = el('div', 'gw-log');
  log.setAttribute('aria-live', 'polite');
  var form = el('form', 'gw-form');
  var input = el('input');
  input.placeholder = 'Type a message…';
  input.setAttribute('aria-label', 'Message');
  var sendBtn = el('button', '', 'Send');
  sendBtn.type = 'submit';
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);

  var containerId = script.getAttribute('data-container');
  var container = containerId && document.getElementById(containerId);
  if (container) {
    root.className += ' gw-inline';
    root.style.height = '100%';
    root.appendChild(panel);
    container.appendChild(root);
  } else {
    root.className += ' gw-float';
    var bubble = el('button', 'gw-bubble', '💬');
    bubble.setAttribute('aria-label', title);
    var open = script.getAttribute('data-open') === 'true';
    panel.style.display = open ? 'flex' : 'none';
    bubble.onclick = function () {
      open = !open;
      panel.style.display = open ? 'flex' : 'none';
      if (open) input.focus();
    };
    root.appendChild(panel);
    root.appendChild(bubble);
    (document.body || document.documentElement).appendChild(root);
  }
  document.head.appendChild(style);

  function render(text, direction, id) {
    if (id && seen[id]) return;
    if (id) seen[id] = true;
    var m = el('div', 'gw-msg ' + (direction === 'in' ? 'gw-in' : 'gw-out'), text);
    m.setAttribute('data-direction', direction);
    log.appendChild(m);
    log.scrollTop = log.scrollHeight;
  }

  function contentText(c) {
    switch (c.type) {
      case 'text': return c.text;
      case 'image': return (c.caption ? c.caption + '\n' : '') + (c.url || '[image]');
      case 'file': return (c.name || 'file') + (c.url ? ': ' + c.url : '');
      case 'link': return [c.title, c.description, c.url].filter(Boolean).join('\n');
      case 'location': return (c.label || '') + ' (' + c.latitude + ', ' + c.longitude + ')';
      default: return c.url || '[' + c.type + ']';
    }
  }

  function connect() {
    var url = wsUrl;
    var params = [];
    var token = store.get('token');
    var after = store.get('after');
    if (token) params.push('token=' + encodeURIComponent(token));
    if (after) params.push('after=' + encodeURIComponent(after));
    if (params.length) url += '?' + params.join('&');
    ws = new WebSocket(url);
    ws.onopen = function () {
      retry = 0;
      status.textContent = 'online';
      for (var id in pending) ws.send(JSON.stringify(pending[id]));
    };
    ws.onmessage = function (ev) {
      var f = JSON.parse(ev.data);
      if (f.type === 'session') store.set('token', f.token);
      else if (f.type === 'ack') delete pending[f.clientMessageId];
      else if (f.type === 'error' && f.clientMessageId && pending[f.clientMessageId]) resendLater(f.clientMessageId);
      else if (f.type === 'message') {
        render(contentText(f.message.content), f.message.direction, f.message.id);
        if (!store.get('after') || f.message.id > store.get('after')) store.set('after', f.message.id);
      }
    };
    ws.onclose = function (ev) {
      status.textContent = 'reconnecting…';
      if (ev.code === TOKEN_REFUSED) {
        // Expired or signed with another key: start a fresh visitor session at once.
        store.del('token');
        store.del('after');
        retry = 0;
      }
      var delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  // Refused for now (rate_limited, unavailable): the message stays pending and goes again a little later.
  function resendLater(id) {
    setTimeout(function () {
      if (pending[id] && ws && ws.readyState === 1) ws.send(JSON.stringify(pending[id]));
    }, 2000 + Math.random() * 2000);
  }

  form.onsubmit = function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    var id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    var frame = { type: 'message', clientMessageId: id, text: text };
    pending[id] = frame;
    render(text, 'in');
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
  };

  connect();
})();
