// Passkeys on the gateway's own pages: registration on the account page and the second
// step of a sign-in. The server sends WebAuthn options with base64url binary fields; the
// browser's API wants ArrayBuffers, and the server wants base64url back.
(function () {
  'use strict';

  function toBytes(b64url) {
    const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  async function post(path, body) {
    const resp = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.message || data.error || ('HTTP ' + resp.status));
    return data;
  }

  function show(text, cls) {
    const box = document.getElementById('passkey-status');
    box.className = cls;
    box.textContent = text;
  }

  async function register(form) {
    const csrf = form.querySelector('input[name=csrf]').value;
    const name = form.querySelector('input[name=name]').value;
    const { publicKey } = await post('/.partnergate/account/passkey/options', { csrf });
    publicKey.challenge = toBytes(publicKey.challenge);
    publicKey.user.id = toBytes(publicKey.user.id);
    (publicKey.excludeCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
    const cred = await navigator.credentials.create({ publicKey });
    const credential = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(cred.response.attestationObject),
        clientDataJSON: toB64url(cred.response.clientDataJSON),
      },
      extensions: {},
    };
    const done = await post('/.partnergate/account/passkey', { csrf, name, credential });
    if (done.recovery_codes) {
      const list = document.getElementById('recovery-codes');
      done.recovery_codes.forEach((c) => {
        const li = document.createElement('li');
        const code = document.createElement('code');
        code.textContent = c;
        li.appendChild(code);
        list.appendChild(li);
      });
      document.getElementById('codes').hidden = false;
      show('Your passkey was added. Keep the recovery codes below.', 'notice');
    } else {
      location.assign(done.redirect);
    }
  }

  async function signIn(form) {
    const csrf = form.querySelector('input[name=csrf]').value;
    const rd = form.querySelector('input[name=rd]').value;
    const { publicKey } = await post('/.partnergate/login/passkey/options', { csrf });
    publicKey.challenge = toBytes(publicKey.challenge);
    (publicKey.allowCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
    const cred = await navigator.credentials.get({ publicKey });
    const credential = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(cred.response.authenticatorData),
        clientDataJSON: toB64url(cred.response.clientDataJSON),
        signature: toB64url(cred.response.signature),
        userHandle: cred.response.userHandle ? toB64url(cred.response.userHandle) : null,
      },
      extensions: {},
    };
    const done = await post('/.partnergate/login/passkey', { csrf, rd, credential });
    location.assign(done.redirect);
  }

  // The button stays disabled until the script has taken over the form (and without
  // WebAuthn in this browser).
  function wire(id, work) {
    const form = document.getElementById(id);
    if (!form) return;
    if (!window.PublicKeyCredential) {
      show('This browser cannot use passkeys.', 'error');
      return;
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const button = form.querySelector('button');
      button.disabled = true;
      show('Follow your browser\u2019s prompt\u2026', 'muted');
      work(form).catch((e) => show('That did not work: ' + e.message, 'error'))
        .finally(() => { button.disabled = false; });
    });
    form.querySelector('button').disabled = false;
  }

  wire('passkey-register', register);
  wire('passkey-signin', signIn);
}());
