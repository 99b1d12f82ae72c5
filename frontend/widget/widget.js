/*
 * AICO web widget: <script src="https://aico.example/widget.js" data-widget="wk_…"></script>
 * A launcher button that opens a chat with the widget's flow. Everything lives in a shadow root, so the host
 * page's styles and scripts do not reach it; theme it with CSS variables on the host element `aico-widget`:
 * --aico-accent, --aico-bg, --aico-fg, --aico-radius, --aico-font. `data-visitor-token` (signed by the host site's
 * backend with the widget's identity secret) names the visitor, so the conversation is that user's.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.dataset.widget) return;
  var key = script.dataset.widget;
  var api = new URL(script.src).origin + '/v1/widget/' + encodeURIComponent(key);
  // A tag of its own: the host page's rules for div, button… do not match the widget's element.
  var host = document.createElement('aico-widget');
  host.id = 'aico-widget';
  var root = host.attachShadow({ mode: 'open' });
  root.innerHTML =
    '<style>' +
    ':host{all:initial;position:fixed;right:20px;bottom:20px;z-index:2147483647}' +
    '.launcher,.panel{font-family:var(--aico-font,system-ui,sans-serif);font-size:15px;line-height:1.4}' +
    '.launcher{background:var(--aico-accent,#4f46e5);color:#fff;border:0;border-radius:999px;padding:12px 18px;cursor:pointer}' +
    '.panel{position:absolute;right:0;bottom:56px;width:320px;height:420px;display:flex;flex-direction:column;' +
    'background:var(--aico-bg,#fff);color:var(--aico-fg,#111);border-radius:var(--aico-radius,12px);box-shadow:0 8px 30px rgba(0,0,0,.2);overflow:hidden}' +
    '.panel[hidden]{display:none}.log{flex:1;overflow:auto;padding:12px;display:flex;flex-direction:column;gap:8px}' +
    '.msg{padding:8px 10px;border-radius:10px;max-width:85%;white-space:pre-wrap}.agent{background:#f1f1f4;align-self:flex-start}' +
    '.visitor{background:var(--aico-accent,#4f46e5);color:#fff;align-self:flex-end}.note{color:#a00;font-size:13px}' +
    'form{display:flex;border-top:1px solid #e5e5e5}input{flex:1;border:0;padding:10px;font:inherit}button.send{border:0;background:none;color:var(--aico-accent,#4f46e5);padding:0 12px;font:inherit;cursor:pointer}' +
    '</style>' +
    '<div class="panel" part="panel" hidden><div class="log" role="log" aria-live="polite"></div>' +
    '<form><input aria-label="Message" placeholder="Type a message" autocomplete="off"><button class="send" type="submit">Send</button></form></div>' +
    '<button class="launcher" part="launcher" type="button" aria-label="Open chat">Chat</button>';
  var panel = root.querySelector('.panel');
  var log = root.querySelector('.log');
  var form = root.querySelector('form');
  var input = root.querySelector('input');
  var session = null;
  var starting = null;

  function add(text, who) {
    var p = document.createElement('div');
    p.className = 'msg ' + who;
    p.textContent = text;
    log.appendChild(p);
    log.scrollTop = log.scrollHeight;
    return p;
  }
  function note(text) {
    var p = document.createElement('div');
    p.className = 'note';
    p.textContent = text;
    log.appendChild(p);
  }
  function call(path, body) {
    return fetch(api + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      });
  }
  // The reply as it is produced: Server-Sent Events read from the response body, one bubble per message.
  function stream(path, body) {
    return fetch(api + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) {
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        var reader = r.body.getReader();
        var decoder = new TextDecoder();
        var buffer = '';
        var bubbles = {};
        function handle(block) {
          var name = '';
          var data = '';
          block.split('\n').forEach(function (line) {
            if (line.indexOf('event: ') === 0) name = line.slice(7);
            else if (line.indexOf('data: ') === 0) data += line.slice(6);
          });
          if (!data) return;
          var payload = JSON.parse(data);
          if (name === 'chunk') {
            var bubble = bubbles[payload.message];
            if (!bubble) { bubble = bubbles[payload.message] = add('', 'agent'); }
            bubble.textContent += payload.text;
            log.scrollTop = log.scrollHeight;
          } else if (name === 'error') {
            note('The reply failed.');
          }
        }
        function pump() {
          return reader.read().then(function (part) {
            if (part.done) return;
            buffer += decoder.decode(part.value, { stream: true });
            var blocks = buffer.split('\n\n');
            buffer = blocks.pop();
            blocks.forEach(handle);
            return pump();
          });
        }
        return pump();
      });
  }
  function start() {
    if (!starting) {
      var visitor = script.dataset.visitorToken;
      starting = call('/sessions', visitor ? { visitor_token: visitor } : {}).then(function (s) {
        session = s;
        s.messages.forEach(function (m) { add(m.text, 'agent'); });
      }).catch(function () {
        starting = null;
        note('Chat is not available on this page.');
      });
    }
    return starting;
  }
  root.querySelector('.launcher').addEventListener('click', function () {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) { start(); input.focus(); }
  });
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    add(text, 'visitor');
    start().then(function () {
      if (!session) return;
      return stream('/sessions/' + session.session_id + '/messages?stream=true',
        { visitor_token: session.visitor_token, text: text });
    }).catch(function () { note('The message could not be sent.'); });
  });
  (document.body || document.documentElement).appendChild(host);
})();
