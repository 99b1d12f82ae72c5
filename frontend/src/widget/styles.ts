/** The widget's stylesheet, inside its shadow root: the host page's rules do not reach it, and it reaches nothing of the page. */
export const WIDGET_CSS = [
  ':host{all:initial;position:fixed;right:20px;bottom:20px;z-index:2147483647}',
  '.launcher,.talk,.panel{font-family:var(--aico-font,system-ui,sans-serif);font-size:15px;line-height:1.4}',
  '.buttons{display:flex;gap:8px;justify-content:flex-end}',
  '.launcher,.talk{background:var(--aico-accent,#4f46e5);color:#fff;border:0;border-radius:999px;padding:12px 18px;cursor:pointer}',
  '.talk[hidden]{display:none}.talk.live{background:#b91c1c}',
  '.panel{position:absolute;right:0;bottom:56px;width:320px;height:420px;display:flex;flex-direction:column;' +
    'background:var(--aico-bg,#fff);color:var(--aico-fg,#111);border-radius:var(--aico-radius,12px);box-shadow:0 8px 30px rgba(0,0,0,.2);overflow:hidden}',
  '.panel[hidden]{display:none}.log{flex:1;overflow:auto;padding:12px;display:flex;flex-direction:column;gap:8px}',
  '.msg{padding:8px 10px;border-radius:10px;max-width:85%;white-space:pre-wrap}.agent{background:#f1f1f4;align-self:flex-start}',
  '.visitor{background:var(--aico-accent,#4f46e5);color:#fff;align-self:flex-end}.interim{opacity:.6}',
  '.note{color:#a00;font-size:13px}.status{font-size:12px;color:#555;padding:0 12px}.status:empty{display:none}',
  'form{display:flex;border-top:1px solid #e5e5e5}input{flex:1;border:0;padding:10px;font:inherit}',
  'button.send{border:0;background:none;color:var(--aico-accent,#4f46e5);padding:0 12px;font:inherit;cursor:pointer}',
].join('');

export const WIDGET_HTML =
  `<style>${WIDGET_CSS}</style>` +
  '<div class="panel" part="panel" hidden><div class="log" role="log" aria-live="polite"></div>' +
  '<div class="status" role="status"></div>' +
  '<form><input aria-label="Message" placeholder="Type a message" autocomplete="off"><button class="send" type="submit">Send</button></form></div>' +
  '<div class="buttons"><button class="talk" part="talk" type="button" aria-label="Start voice call" hidden>Talk</button>' +
  '<button class="launcher" part="launcher" type="button" aria-label="Open chat">Chat</button></div>';
