// The partnergate web console: a small client of the admin API (/.partnergate/api/v1).
//
// The API decides what the signed-in admin may see and do; the console follows GET /me and
// whatever the API returns. Everything the API returns is put on the page as text through
// DOM APIs, never as HTML: org names come from the public register form.
'use strict';

(function () {
  const API = '/.partnergate/api/v1';
  const CONSOLE = '/.partnergate/admin/';
  const LEVELS = ['view', 'standard', 'admin'];
  const AUDIT_PAGE = 100;
  const AUDIT_EXPORT = 1000;

  // What a refusal's reason word means; the word itself is always shown as well.
  const REASONS = {
    other_org: 'that belongs to another organisation',
    self_change: 'you cannot change your own roles or status',
    not_delegable: 'a partner admin cannot hand out this role',
    role_not_allowed: 'this organisation may not hand out this role',
    above_own_rights: 'that goes beyond your own rights',
    seat_cap: 'the organisation has used all its seats',
    grant_above_own: 'you can only grant up to your own level on this account',
    grant_ttl: 'the grant lasts longer than allowed, or needs an expiry',
    org_inactive: 'the organisation is suspended or offboarded',
    org_type: 'only owner admins can do this',
    permission: 'your role does not allow this',
    role: 'your role does not allow this',
    user_inactive: 'your account is not active',
  };

  const state = { me: null, roles: null, accounts: null, renderSeq: 0 };

  // ---- DOM ----

  // An element with properties, listeners and children; strings become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'class') node.className = value;
      else if (['value', 'checked', 'selected', 'disabled', 'hidden'].includes(key)) node[key] = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    return add(node, children);
  }

  function add(node, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function table(id, headings, rows, empty) {
    if (rows.length === 0) return el('p', { class: 'muted', id: id + '-empty' }, empty);
    return el('table', { id },
      el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows));
  }

  function badge(word) {
    return el('span', { class: 'badge badge-' + String(word).replace(/[^a-z_]/g, '') }, word);
  }

  function link(hash, text) {
    return el('a', { href: hash }, text);
  }

  const enc = encodeURIComponent;
  const orgHash = (id) => '#/orgs/' + enc(id);
  const userHash = (id) => '#/users/' + enc(id);

  // A time from the API (Unix seconds or RFC 3339), in UTC.
  function when(value) {
    if (value === null || value === undefined || value === '') return '—';
    const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  // ---- API ----

  class ApiError extends Error {
    constructor(status, body) {
      super(describe(status, body));
      this.status = status;
      this.body = body;
    }
  }

  function describe(status, body) {
    const b = body && typeof body === 'object' ? body : {};
    let text;
    if (status === 0) text = 'The gateway could not be reached.';
    else if (status === 403 && b.reason) {
      const why = REASONS[b.reason];
      text = 'Refused (' + b.reason + ')' + (why ? ': ' + why + '.' : '.');
    } else if (b.message) text = b.message;
    else if (b.error) text = 'Error ' + status + ': ' + b.error;
    else text = 'Error ' + status + '.';
    if (b.request_id) text += ' [request ' + b.request_id + ']';
    return text;
  }

  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, null);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (response.status === 401) {
      location.assign('/.partnergate/login?rd=' + enc(CONSOLE + location.hash));
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  const has = (permission) => state.me.permissions.includes(permission);
  const can = {
    orgs: () => has('orgs:manage') || has('users:manage'),
    users: () => has('users:manage'),
    ownOrgs: () => state.me.owner_admin && has('orgs:manage'),
    grants: () => has('accounts:manage') || has('users:manage'),
    review: () => has('audit:view') || has('users:manage'),
  };

  async function allRoles() {
    if (!state.roles) state.roles = (await api('GET', '/roles')).roles;
    return state.roles;
  }

  async function allAccounts() {
    if (!state.accounts) state.accounts = (await api('GET', '/accounts')).accounts;
    return state.accounts;
  }

  // The roles this admin may hand out in `org` (the API checks the same bounds).
  function assignable(roles, org) {
    return roles.filter((r) =>
      (!org.allowed_roles || org.allowed_roles.includes(r.name)) &&
      (state.me.owner_admin || r.delegable) &&
      r.permissions.every(has));
  }

  // ---- actions and feedback ----

  function errorText(e) {
    return e instanceof ApiError ? e.message : String((e && e.message) || e);
  }

  function errorBox(e) {
    return el('p', { class: 'error', role: 'alert' }, errorText(e));
  }

  // Run `work` for a button; an error is shown in `slot`, next to the button.
  async function act(button, slot, work) {
    slot.replaceChildren();
    button.disabled = true;
    try {
      await work();
    } catch (e) {
      slot.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  }

  function action(label, work, cls) {
    const slot = el('span', { class: 'slot' });
    const button = el('button', { type: 'button', class: cls }, label);
    button.addEventListener('click', () => act(button, slot, work));
    return el('span', { class: 'action' }, button, slot);
  }

  // A destructive action: a first click asks, a second one does it.
  function confirmed(label, question, work) {
    const box = el('span', { class: 'action' });
    const slot = el('span', { class: 'slot' });
    const start = el('button', { type: 'button', class: 'danger' }, label);
    const reset = () => box.replaceChildren(start, slot);
    start.addEventListener('click', () => {
      slot.replaceChildren();
      const yes = el('button', { type: 'button', class: 'danger confirm' }, 'Yes, ' + label.toLowerCase());
      const no = el('button', { type: 'button', onclick: reset }, 'Cancel');
      yes.addEventListener('click', () => act(yes, slot, work));
      box.replaceChildren(el('span', { class: 'question' }, question), yes, no, slot);
    });
    reset();
    return box;
  }

  // A block that loads its content and can load it again, with a notice on top.
  function block(load) {
    const note = el('div', { class: 'note-slot' });
    const body = el('div', { class: 'block-body' });
    const node = el('div', { class: 'block' }, note, body);
    const self = {
      node,
      async reload(notice) {
        try {
          body.replaceChildren(add(document.createDocumentFragment(), await load(self)));
        } catch (e) {
          body.replaceChildren(errorBox(e));
        }
        note.replaceChildren();
        if (notice) add(note, el('div', { class: 'notice', role: 'status' }, notice));
      },
    };
    return self;
  }

  function inviteLink(link) {
    const code = el('code', { class: 'invite-link' }, link);
    const copy = el('button', { type: 'button', class: 'small' }, 'Copy');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(link);
        copy.textContent = 'Copied';
      } catch (e) {
        getSelection().selectAllChildren(code);
      }
    });
    return el('span', { class: 'link-box' }, code, ' ', copy);
  }

  function invitationNotice(invitation) {
    return [
      'Invitation for ', el('strong', {}, invitation.email), ', valid until ',
      when(invitation.expires_at), '. Send them this link; it is shown only once: ',
      inviteLink(invitation.link),
    ];
  }

  // ---- Organisations ----

  async function viewOrgs() {
    const owner = can.ownOrgs();
    const roles = owner ? await allRoles() : [];
    const list = block(async (self) => {
      const { orgs } = await api('GET', '/orgs');
      const pending = orgs.filter((o) => o.status === 'pending');
      const rest = orgs.filter((o) => o.status !== 'pending');
      const out = [];
      if (owner) {
        out.push(el('h2', {}, 'Registration requests'),
          table('pending-table', ['Organisation', 'Type', 'Contact', 'Requested', ''],
            pending.map((o) => pendingRow(o, roles, self)), 'No registration requests are waiting.'));
      }
      out.push(el('h2', {}, owner ? 'Partner organisations' : 'Your organisation'),
        table('orgs-table', ['Organisation', 'Type', 'Status', 'Seats used', ''],
          rest.map((o) => orgRow(o, owner, self)), 'No organisations.'));
      return out;
    });
    await list.reload();
    return [el('h1', {}, 'Organisations'), list.node];
  }

  function seats(o) {
    return o.max_users === null || o.max_users === undefined
      ? o.seats_used + ' (no cap)'
      : o.seats_used + ' / ' + o.max_users;
  }

  function orgRow(o, owner, list) {
    const name = can.users() ? link(orgHash(o.id), o.name) : o.name;
    const actions = el('td', { class: 'actions' });
    if (can.users()) add(actions, link(orgHash(o.id), 'Users'));
    if (owner && o.id !== state.me.org) add(actions, orgActions(o, list));
    return el('tr', { 'data-org': o.id },
      el('td', {}, el('span', { class: 'org-name' }, name), el('div', { class: 'muted small' }, o.id)),
      el('td', {}, o.type), el('td', {}, badge(o.status)), el('td', {}, seats(o)), actions);
  }

  function orgActions(o, list) {
    const change = (verb) => async () => {
      const r = await api('POST', '/orgs/' + enc(o.id) + '/' + verb);
      await list.reload([o.name, ' is now ', r.status, ' (', String(r.sessions_ended), ' sessions ended).']);
    };
    const out = [];
    if (o.status === 'active') {
      out.push(confirmed('Suspend', 'Suspend ' + o.name + '? Every member is signed out at once.', change('suspend')));
    }
    if (o.status === 'suspended') out.push(action('Reactivate', change('reactivate')));
    if (o.status === 'active' || o.status === 'suspended') {
      out.push(confirmed('Offboard', 'Offboard ' + o.name + '? Every user is disabled and every grant revoked.', change('offboard')));
    }
    return out;
  }

  function pendingRow(o, roles, list) {
    const cell = el('td', { class: 'actions' });
    const approve = el('button', { type: 'button', class: 'primary' }, 'Approve…');
    const reject = confirmed('Reject', 'Reject the request from ' + o.name + '?', async () => {
      await api('POST', '/orgs/' + enc(o.id) + '/reject');
      await list.reload(['The request from ', o.name, ' was rejected.']);
    });
    const idle = () => cell.replaceChildren(approve, reject);
    approve.addEventListener('click', () => cell.replaceChildren(approveForm(o, roles, list, idle)));
    idle();
    return el('tr', { 'data-org': o.id },
      el('td', {}, el('span', { class: 'org-name' }, o.name), el('div', { class: 'muted small' }, o.id)),
      el('td', {}, o.type), el('td', {}, o.contact_email || '—'), el('td', {}, when(o.created_at)), cell);
  }

  function approveForm(o, roles, list, cancel) {
    const choices = assignable(roles, o);
    const invite = el('input', { type: 'checkbox', class: 'approve-invite', checked: Boolean(o.contact_email) && choices.length > 0 });
    const role = el('select', { class: 'approve-role' },
      choices.map((r) => el('option', { value: r.name, selected: r.name === 'partner-admin' }, r.name)));
    const slot = el('span', { class: 'slot' });
    const go = el('button', { type: 'submit', class: 'primary confirm' }, 'Approve');
    const form = el('form', { class: 'inline-form approve-form' },
      o.contact_email ? el('label', {}, invite, ' Invite ', o.contact_email, ' as ') : null,
      o.contact_email ? role : null,
      go, el('button', { type: 'button', onclick: cancel }, 'Cancel'), slot);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(go, slot, async () => {
        const body = o.contact_email && invite.checked ? { invite: { roles: [role.value] } } : undefined;
        const r = await api('POST', '/orgs/' + enc(o.id) + '/approve', body);
        const notice = [o.name, ' is approved. '];
        if (r.invitation) notice.push(invitationNotice(r.invitation));
        await list.reload(notice);
      });
    });
    return form;
  }

  // ---- Users of an org ----

  async function viewOrg([orgId]) {
    const org = await api('GET', '/orgs/' + enc(orgId));
    const roles = await allRoles();
    const users = block(() => usersTable(org, users));
    const invitations = block(() => invitationsTable(org));
    const sso = block(() => ssoBlock(org, roles, sso));
    await Promise.all([users.reload(), invitations.reload(), sso.reload()]);
    return [
      el('p', { class: 'crumbs' }, link('#/orgs', 'Organisations'), ' › ', org.name),
      el('h1', {}, org.name),
      el('p', { class: 'muted' }, org.id, ' · ', org.type, ' · ', badge(org.status), ' · seats used ', seats(org)),
      mfaSetting(org),
      el('h2', {}, 'Users'), users.node,
      el('h2', {}, 'Invite a user'), inviteForm(org, roles, users, invitations),
      el('h2', {}, 'Invitations'), invitations.node,
      el('h2', {}, 'Single sign-on'), sso.node,
    ];
  }

  // ---- Single sign-on: the org's identity provider and email domains ----

  async function ssoBlock(org, roles, self) {
    const path = '/orgs/' + enc(org.id);
    const { domains } = await api('GET', path + '/domains');
    let connection = null;
    try {
      connection = await api('GET', path + '/sso');
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
    }
    const owner = can.ownOrgs();
    const rows = domains.map((d) => el('tr', { 'data-domain': d }, el('td', {}, d),
      el('td', {}, owner ? confirmed('Remove', 'Remove ' + d + '?', async () => {
        await api('DELETE', path + '/domains/' + enc(d));
        await self.reload('Domain ' + d + ' removed.');
      }) : '')));
    const out = [
      el('p', { class: 'muted' }, 'Sign-ins with an email of these domains go to the organisation\'s identity provider.'),
      table('domains-table', ['Domain', ''], rows, 'No domains yet.'),
    ];
    if (owner) out.push(domainForm(path, self));
    out.push(el('h3', {}, 'Identity provider'));
    if (connection) {
      const map = Object.entries(connection.role_map).map(([k, v]) => k + ' → ' + v).join(', ');
      out.push(el('dl', { id: 'sso-connection', class: 'facts' },
        el('dt', {}, 'Issuer'), el('dd', {}, connection.issuer),
        el('dt', {}, 'Client id'), el('dd', {}, connection.client_id),
        el('dt', {}, 'Client secret'), el('dd', {}, 'read from ' + connection.client_secret),
        el('dt', {}, 'New users'), el('dd', {}, connection.jit ? 'created at first sign-in with ' + (connection.default_roles.join(', ') || 'no roles') : 'must be invited first'),
        el('dt', {}, 'Roles from'), el('dd', {}, connection.roles_claim ? connection.roles_claim + (map ? ': ' + map : '') : 'the portal (not the provider)'),
        el('dt', {}, 'Passwords'), el('dd', {}, connection.enforce ? 'refused: SSO only' : 'still allowed'),
        el('dt', {}, 'Second factor'), el('dd', {}, connection.idp_mfa ? 'the provider\'s MFA counts' : 'not taken from the provider')));
      if (owner) {
        out.push(confirmed('Remove connection', 'Members will sign in with a password again. Remove?', async () => {
          await api('DELETE', path + '/sso');
          await self.reload('The connection was removed.');
        }));
      }
    } else {
      out.push(el('p', { class: 'muted', id: 'sso-none' }, 'None: members sign in with a password.'));
    }
    if (owner) out.push(connectionForm(org, roles, connection, self));
    return out;
  }

  function domainForm(path, self) {
    const input = el('input', { id: 'domain-name', required: true, placeholder: 'acme.example', autocomplete: 'off' });
    const slot = el('div', { class: 'slot' });
    const go = el('button', { type: 'submit', id: 'domain-add' }, 'Add domain');
    const form = el('form', { id: 'domain-form', class: 'inline' }, input, go, slot);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(go, slot, async () => {
        const d = input.value.trim();
        await api('PUT', path + '/domains/' + enc(d));
        await self.reload('Domain ' + d + ' added.');
      });
    });
    return form;
  }

  function connectionForm(org, roles, c, self) {
    const field = (id, label, value, placeholder) => {
      const input = el('input', { id, autocomplete: 'off', placeholder: placeholder || '' });
      input.value = value || '';
      return [el('label', { for: id }, label), input];
    };
    const check = (id, label, on) => {
      const box = el('input', { type: 'checkbox', id });
      box.checked = !!on;
      return el('label', { class: 'check' }, box, ' ', label);
    };
    const mapText = c ? Object.entries(c.role_map).map(([k, v]) => k + '=' + v).join('\n') : '';
    const map = el('textarea', { id: 'sso-role-map', rows: 3, placeholder: 'sales=partner-sales' });
    map.value = mapText;
    const choices = assignable(roles, org).filter((r) => r.delegable);
    const slot = el('div', { class: 'slot', id: 'sso-result' });
    const go = el('button', { type: 'submit', class: 'primary', id: 'sso-save' }, c ? 'Save connection' : 'Connect');
    const form = el('form', { id: 'sso-form', class: 'stack' },
      ...field('sso-issuer', 'Issuer URL', c && c.issuer, 'https://login.example.com'),
      ...field('sso-client-id', 'Client id', c && c.client_id),
      ...field('sso-secret', 'Client secret from', c && c.client_secret, 'env:ACME_OIDC_SECRET or file:/run/secrets/acme'),
      ...field('sso-roles-claim', 'Roles claim (optional)', c && c.roles_claim, 'groups'),
      el('label', { for: 'sso-role-map' }, 'Claim value = role, one per line'), map,
      roleBoxes('sso-default-role', choices, c ? c.default_roles : [], 'Roles of new users'),
      check('sso-jit', 'Create users at their first sign-in', c ? c.jit : true),
      check('sso-enforce', 'Refuse passwords for these domains', c && c.enforce),
      check('sso-idp-mfa', 'Count the provider\'s MFA as a second factor', c && c.idp_mfa),
      el('div', {}, go), slot);
    const value = (id) => form.querySelector('#' + id).value.trim();
    const on = (id) => form.querySelector('#' + id).checked;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(go, slot, async () => {
        const roleMap = {};
        for (const line of map.value.split('\n')) {
          const [k, v] = line.split('=').map((x) => x && x.trim());
          if (k && v) roleMap[k] = v;
        }
        const body = {
          issuer: value('sso-issuer'),
          client_id: value('sso-client-id'),
          client_secret: value('sso-secret'),
          role_map: roleMap,
          default_roles: checkedValues(form, 'sso-default-role'),
          jit: on('sso-jit'),
          enforce: on('sso-enforce'),
          idp_mfa: on('sso-idp-mfa'),
        };
        if (value('sso-roles-claim')) body.roles_claim = value('sso-roles-claim');
        await api('PUT', '/orgs/' + enc(org.id) + '/sso', body);
        await self.reload('The connection is saved. Members of its domains now sign in there.');
      });
    });
    return form;
  }

  // The org's second-factor requirement; owner admins may change it.
  function mfaSetting(org) {
    const required = org.mfa === 'required';
    const text = el('span', { id: 'org-mfa' },
      'Second factor: ', required ? 'required for every member' : 'optional');
    const line = el('p', { class: 'muted' }, text);
    if (can.ownOrgs() && org.id !== state.me.org) {
      const next = required ? 'optional' : 'required';
      add(line, ' ', action(required ? 'Make optional' : 'Require a second factor', async () => {
        await api('PATCH', '/orgs/' + enc(org.id), { mfa: next });
        await render();
        flash(required ? 'A second factor is now optional.' : 'Every member now needs a second factor.');
      }));
    }
    return line;
  }

  async function usersTable(org, list) {
    const { users } = await api('GET', '/orgs/' + enc(org.id) + '/users');
    const rows = users.map((u) => el('tr', { 'data-user': u.email },
      el('td', {}, link(userHash(u.user_id), u.email)),
      el('td', {}, u.roles.join(', ') || '—'),
      el('td', {}, badge(u.status)),
      el('td', {}, when(u.last_login_at)),
      el('td', {}, when(u.last_seen_at)),
      el('td', {}, grantsText(u.grants)),
      el('td', { class: 'actions' }, userActions(u, (notice) => list.reload(notice), true))));
    return table('users-table', ['Email', 'Roles', 'Status', 'Last login', 'Last request', 'Grants', ''],
      rows, 'No users yet.');
  }

  function grantsText(grants) {
    if (!grants || grants.length === 0) return '—';
    return grants.map((g) => {
      const level = g.level || g.permission;
      const until = g.expires_at || g.expires;
      let text = g.account + ': ' + level;
      if (until) text += (g.expired ? ' (expired ' : ' (until ') + when(until) + ')';
      return text;
    }).join('; ');
  }

  // Suspend / reactivate / remove a user (and a link to their page, from a list);
  // `done` reloads what shows the user.
  function userActions(u, done, fromList) {
    if (u.user_id === state.me.user_id) return el('span', { class: 'muted' }, '(you)');
    const out = fromList ? [link(userHash(u.user_id), 'Manage')] : [];
    const status = (verb) => async () => {
      const r = await api('POST', '/users/' + enc(u.user_id) + '/' + verb);
      await done([u.email, ' is now ', r.status, ' (', String(r.sessions_ended), ' sessions ended).']);
    };
    if (u.status === 'active') {
      out.push(confirmed('Suspend', 'Suspend ' + u.email + '? They are signed out at once.', status('suspend')));
    }
    if (u.status === 'suspended' || u.status === 'disabled') out.push(action('Reactivate', status('reactivate')));
    if (u.status !== 'disabled') {
      out.push(confirmed('Remove', 'Remove ' + u.email + '? They are disabled and lose every grant.', async () => {
        await api('DELETE', '/users/' + enc(u.user_id));
        await done([u.email, ' was removed.']);
      }));
    }
    return out;
  }

  function roleBoxes(name, choices, checked, legend) {
    if (choices.length === 0) return el('p', { class: 'muted' }, 'You cannot hand out any role in this organisation.');
    return el('fieldset', { class: 'roles' }, legend ? el('legend', {}, legend) : null,
      choices.map((r) => el('label', { class: 'check', title: r.permissions.join(', ') },
        el('input', { type: 'checkbox', name, value: r.name, checked: checked.includes(r.name) }), ' ', r.name)));
  }

  function checkedValues(form, name) {
    return Array.from(form.querySelectorAll('input[name="' + name + '"]:checked')).map((i) => i.value);
  }

  function inviteForm(org, roles, users, invitations) {
    const choices = assignable(roles, org);
    const email = el('input', { type: 'email', id: 'invite-email', required: true, autocomplete: 'off' });
    const slot = el('div', { class: 'slot', id: 'invite-result' });
    const go = el('button', { type: 'submit', class: 'primary', id: 'invite-submit' }, 'Invite');
    const defaults = choices.some((r) => r.name === 'partner-user') ? ['partner-user'] : [];
    const form = el('form', { id: 'invite-form', class: 'stack' },
      el('label', { for: 'invite-email' }, 'Work email'), email,
      roleBoxes('invite-role', choices, defaults, 'Roles'), el('div', {}, go), slot);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(go, slot, async () => {
        const picked = checkedValues(form, 'invite-role');
        const invitation = await api('POST', '/orgs/' + enc(org.id) + '/invitations', { email: email.value, roles: picked });
        email.value = '';
        await Promise.all([users.reload(), invitations.reload()]);
        slot.replaceChildren(el('div', { class: 'notice', role: 'status' }, invitationNotice(invitation)));
      });
    });
    return form;
  }

  async function invitationsTable(org) {
    const { invitations } = await api('GET', '/orgs/' + enc(org.id) + '/invitations');
    const rows = invitations.map((i) => el('tr', { 'data-invitation': i.email },
      el('td', {}, i.email), el('td', {}, i.roles.join(', ')), el('td', {}, badge(i.state)),
      el('td', {}, when(i.created_at)), el('td', {}, when(i.expires_at))));
    return table('invitations-table', ['Email', 'Roles', 'State', 'Sent', 'Expires'], rows, 'No invitations.');
  }

  // ---- One user: roles, status, grants ----

  async function viewUser([userId]) {
    const user = await api('GET', '/users/' + enc(userId));
    const self = user.user_id === state.me.user_id;
    let fetched = user;
    const head = block(async () => {
      const u = fetched || await api('GET', '/users/' + enc(userId));
      fetched = null;
      return el('p', { class: 'muted' }, u.org_name, ' · ', badge(u.status), ' · roles: ', u.roles.join(', ') || '—');
    });
    const out = [
      el('p', { class: 'crumbs' }, link('#/orgs', 'Organisations'), ' › ',
        can.users() ? link(orgHash(user.org), user.org_name) : user.org_name, ' › ', user.email),
      el('h1', {}, user.email), head.node,
    ];
    await head.reload();
    if (!self && can.users()) {
      const org = await api('GET', '/orgs/' + enc(user.org));
      out.push(el('div', { class: 'toolbar' }, userActions(user, async (notice) => {
        await render();
        flash(notice);
      })));
      out.push(el('h2', {}, 'Roles'), rolesForm(user, org, await allRoles(), head));
    }
    out.push(el('h2', {}, 'Second factors'), factorsBlock(user, self));
    if (can.grants()) {
      const grants = block(() => grantsTable(user, self, grants));
      await grants.reload();
      out.push(el('h2', {}, 'Client-account grants'), grants.node);
      if (!self && can.users()) out.push(el('h3', {}, 'Assign a grant'), await grantForm(user, grants));
    }
    return out;
  }

  // What the user has enrolled (never a secret), and the admin's reset for a lost phone.
  function factorsBlock(user, self) {
    const f = user.factors || { factors: [], recovery_codes_left: 0 };
    const rows = f.factors.map((x) => el('tr', { 'data-factor': x.id },
      el('td', {}, x.name), el('td', {}, x.kind), el('td', {}, when(x.created_at)),
      el('td', {}, x.last_used_at ? when(x.last_used_at) : 'never')));
    const box = el('div', { id: 'factors' },
      table('factors-table', ['Name', 'Kind', 'Added', 'Last used'], rows, 'No second factor.'),
      el('p', { class: 'muted' }, 'Recovery codes left: ', String(f.recovery_codes_left),
        user.org_mfa === 'required' ? ' · the org requires a second factor' : ''));
    if (!self && can.users() && f.factors.length > 0) {
      add(box, confirmed('Reset second factors',
        'Remove every second factor and recovery code? The user signs in with the password and sets one up again.',
        async () => {
          await api('POST', '/users/' + enc(user.user_id) + '/factors/reset');
          await render();
          flash('Second factors reset.');
        }));
    }
    return box;
  }

  function rolesForm(user, org, roles, head) {
    const choices = assignable(roles, org);
    // Roles the user holds but this admin cannot hand out stay visible, and stay as they are.
    const kept = user.roles.filter((r) => !choices.some((c) => c.name === r));
    const slot = el('span', { class: 'slot' });
    const go = el('button', { type: 'submit', class: 'primary', id: 'roles-submit' }, 'Save roles');
    const form = el('form', { id: 'roles-form', class: 'stack' },
      roleBoxes('user-role', choices, user.roles),
      kept.length ? el('p', { class: 'muted' }, 'Also holds (not yours to change): ', kept.join(', ')) : null,
      el('div', {}, go, slot));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(go, slot, async () => {
        const wanted = checkedValues(form, 'user-role').concat(kept);
        const r = await api('PATCH', '/users/' + enc(user.user_id), { roles: wanted });
        await head.reload(['Roles saved: ', r.roles.join(', ') || 'none', '.']);
      });
    });
    return form;
  }

  function expiry(until) {
    if (!until) return 'no expiry';
    return when(until) + (new Date(until).getTime() <= Date.now() ? ' (expired)' : '');
  }

  async function grantsTable(user, self, list) {
    const { grants } = await api('GET', '/users/' + enc(user.user_id) + '/grants');
    const rows = grants.map((g) => {
      const cells = [el('td', {}, g.account), el('td', {}, g.permission), el('td', {}, expiry(g.expires))];
      const actions = el('td', { class: 'actions' });
      if (!self && can.users()) {
        const level = el('select', { class: 'grant-level', 'aria-label': 'Level on ' + g.account },
          LEVELS.map((l) => el('option', { value: l, selected: l === g.permission }, l)));
        add(actions, level, action('Change', async () => {
          await api('PUT', '/users/' + enc(user.user_id) + '/grants/' + enc(g.account),
            { permission: level.value, expires: g.expires || null });
          await list.reload([g.account, ' is now ', level.value, '.']);
        }), confirmed('Revoke', 'Revoke ' + g.account + '?', async () => {
          await api('DELETE', '/users/' + enc(user.user_id) + '/grants/' + enc(g.account));
          await list.reload([g.account, ' was revoked.']);
        }));
      }
      return el('tr', { 'data-account': g.account }, cells, actions);
    });
    return table('grants-table', ['Account', 'Level', 'Expires', ''], rows, 'No client-account grants.');
  }

  async function grantForm(user, grants) {
    const accounts = await allAccounts();
    const account = el('select', { id: 'grant-account', required: true },
      accounts.map((a) => el('option', { value: a.id }, a.name + ' (' + a.id + ')')));
    const level = el('select', { id: 'grant-level' }, LEVELS.map((l) => el('option', { value: l }, l)));
    const expires = el('input', { type: 'datetime-local', id: 'grant-expires' });
    const slot = el('div', { class: 'slot', id: 'grant-result' });
    const go = el('button', { type: 'submit', class: 'primary', id: 'grant-submit' }, 'Assign');
    const form = el('form', { id: 'grant-form', class: 'inline-form' },
      el('label', { for: 'grant-account' }, 'Account'), account,
      el('label', { for: 'grant-level' }, 'Level'), level,
      el('label', { for: 'grant-expires' }, 'Expires (optional, your local time)'), expires,
      go, slot);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(go, slot, async () => {
        const until = expires.value ? new Date(expires.value).toISOString() : null;
        await api('PUT', '/users/' + enc(user.user_id) + '/grants/' + enc(account.value),
          { permission: level.value, expires: until });
        await grants.reload([account.value, ': ', level.value, until ? ' until ' + when(until) : '', ' assigned.']);
      });
    });
    return form;
  }

  // ---- Access review ----

  async function viewReview(args, params) {
    const flagged = params.get('flagged') === '1';
    const list = block(async (self) => {
      const { users } = await api('GET', '/review');
      const shown = flagged ? users.filter((u) => u.flag_names.length > 0) : users;
      return [
        el('p', { class: 'muted' }, String(shown.length), ' of ', String(users.length), ' users shown.'),
        table('review-table',
          ['User', 'Org', 'Status', 'Roles', 'Last login', 'Last request', 'Grants', 'Flags', 'Last decision', 'Decide'],
          shown.map((u) => reviewRow(u, self)), 'Nobody to review.'),
      ];
    });
    await list.reload();
    const toggle = el('input', { type: 'checkbox', id: 'review-flagged', checked: flagged });
    toggle.addEventListener('change', () => {
      location.hash = toggle.checked ? '#/review?flagged=1' : '#/review';
    });
    return [
      el('h1', {}, 'Access review'),
      el('p', {}, 'Every user you administer, with last login, last request and grants. ',
        'Record a decision for each: keep the access, or revoke it (the user is disabled at once).'),
      el('label', { class: 'check' }, toggle, ' Only users with flags'),
      list.node,
    ];
  }

  function reviewRow(u, list) {
    const d = u.last_decision;
    const decision = d
      ? [badge(d.decision), ' ', when(d.ts), d.note ? el('div', { class: 'small' }, d.note) : null]
      : el('span', { class: 'muted' }, 'none');
    const cell = el('td', { class: 'actions' });
    if (u.user_id === state.me.user_id) {
      add(cell, el('span', { class: 'muted' }, '(you)'));
    } else {
      const note = el('input', { type: 'text', class: 'review-note', placeholder: 'Note (optional)', maxlength: '1000' });
      const decide = (decision) => async () => {
        await api('POST', '/review/' + enc(u.user_id), { decision, note: note.value || null });
        await list.reload([u.email, ': ', decision, ' recorded.']);
      };
      add(cell, note, action('Keep', decide('keep')),
        confirmed('Revoke', 'Revoke the access of ' + u.email + '? They are disabled at once.', decide('revoke')));
    }
    return el('tr', { 'data-user': u.email },
      el('td', {}, can.users() ? link(userHash(u.user_id), u.email) : u.email),
      el('td', {}, u.org), el('td', {}, badge(u.status)), el('td', {}, u.roles.join(', ') || '—'),
      el('td', {}, when(u.last_login_at)), el('td', {}, when(u.last_seen_at)),
      el('td', {}, grantsText(u.grants)),
      el('td', {}, u.flag_names.length ? u.flag_names.map((f) => badge(f)) : el('span', { class: 'muted' }, 'none')),
      el('td', {}, decision), cell);
  }

  // ---- Audit log ----

  const AUDIT_FILTERS = ['action', 'actor', 'org', 'since'];

  async function viewAudit(args, params) {
    const query = new URLSearchParams();
    for (const key of AUDIT_FILTERS) if (params.get(key)) query.set(key, params.get(key));
    const out = [el('h1', {}, 'Audit log'), auditForm(params)];
    try {
      const actor = params.get('actor');
      if (actor && actor.includes('@')) query.set('actor', await userIdOf(actor));
      if (params.get('since')) query.set('since', String(Math.floor(new Date(params.get('since')).getTime() / 1000)));
      const exportQuery = new URLSearchParams(query);
      exportQuery.set('format', 'jsonl');
      exportQuery.set('limit', String(AUDIT_EXPORT));
      out.push(el('p', {}, el('a', { href: API + '/audit?' + exportQuery, download: 'audit.jsonl', id: 'audit-export' },
        'Download JSON lines'), el('span', { class: 'muted' }, ' (the first ' + AUDIT_EXPORT + ' records that match)')));
      if (params.get('after')) query.set('after', params.get('after'));
      query.set('limit', String(AUDIT_PAGE));
      const { records, next_after: next } = await api('GET', '/audit?' + query);
      out.push(table('audit-table', ['Seq', 'Time', 'Actor', 'Action', 'Target', 'Org', 'Outcome', 'Reason', ''],
        records.map(auditRow), 'No records match.'));
      const pages = el('p', { class: 'pager' });
      if (params.get('after')) {
        const first = new URLSearchParams(params);
        first.delete('after');
        add(pages, link('#/audit?' + first, 'First page'), ' ');
      }
      if (records.length === AUDIT_PAGE && next !== null) {
        const more = new URLSearchParams(params);
        more.set('after', String(next));
        add(pages, link('#/audit?' + more, 'Next page'));
      }
      out.push(pages);
    } catch (e) {
      out.push(errorBox(e));
    }
    return out;
  }

  // The audit API filters by user id; an email is looked up among the users in scope.
  async function userIdOf(email) {
    const { users } = await api('GET', '/review');
    const found = users.find((u) => u.email === email.trim().toLowerCase());
    if (!found) throw new Error('No user ' + email + ' among the users you administer.');
    return found.user_id;
  }

  function auditForm(params) {
    const field = (key, label, props) => {
      const input = el('input', Object.assign({ id: 'audit-' + key, name: key, value: params.get(key) || '' }, props));
      return el('span', { class: 'field' }, el('label', { for: 'audit-' + key }, label), input);
    };
    const form = el('form', { id: 'audit-form', class: 'inline-form' },
      field('action', 'Action starts with', { type: 'text', placeholder: 'login.' }),
      field('actor', 'Actor (email or user id)', { type: 'text' }),
      state.me.owner_admin ? field('org', 'Org id', { type: 'text' }) : null,
      field('since', 'Since (your local time)', { type: 'datetime-local' }),
      el('button', { type: 'submit', class: 'primary' }, 'Apply'),
      link('#/audit', 'Clear'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const next = new URLSearchParams();
      for (const key of AUDIT_FILTERS) {
        const input = form.querySelector('[name="' + key + '"]');
        if (input && input.value.trim()) next.set(key, input.value.trim());
      }
      location.hash = '#/audit?' + next;
    });
    return form;
  }

  function auditRow(r) {
    const details = {
      ip: r.ip, request_id: r.request_id, actor: r.actor, before: r.before, after: r.after, hash: r.hash,
    };
    return el('tr', { 'data-seq': r.seq },
      el('td', {}, String(r.seq)), el('td', {}, when(r.ts)),
      el('td', {}, r.actor_email || r.actor), el('td', {}, r.action), el('td', {}, r.target || '—'),
      el('td', {}, r.org_id || '—'), el('td', {}, badge(r.outcome)), el('td', {}, r.reason || '—'),
      el('td', {}, el('details', {}, el('summary', {}, 'Details'),
        el('pre', {}, JSON.stringify(details, null, 2)))));
  }

  // ---- routing ----

  const VIEWS = { orgs: viewOrgs, org: viewOrg, user: viewUser, review: viewReview, audit: viewAudit };

  function route() {
    const raw = location.hash.replace(/^#\/?/, '');
    const at = raw.indexOf('?');
    const params = new URLSearchParams(at >= 0 ? raw.slice(at + 1) : '');
    let parts;
    try {
      parts = (at >= 0 ? raw.slice(0, at) : raw).split('/').filter(Boolean).map(decodeURIComponent);
    } catch (e) {
      parts = [];
    }
    const [first, second] = parts;
    if (parts.length === 2 && first === 'orgs' && can.users()) return { view: 'org', args: [second], params };
    if (parts.length === 2 && first === 'users' && can.users()) return { view: 'user', args: [second], params };
    if (parts.length === 1 && first === 'orgs' && can.orgs()) return { view: 'orgs', args: [], params };
    if (parts.length === 1 && (first === 'review' || first === 'audit') && can.review()) return { view: first, args: [], params };
    return { view: can.orgs() ? 'orgs' : 'review', args: [], params };
  }

  function flash(notice) {
    const main = document.getElementById('main');
    main.prepend(el('div', { class: 'notice', role: 'status' }, notice));
  }

  async function render() {
    const seq = ++state.renderSeq;
    const { view, args, params } = route();
    const section = view === 'org' || view === 'user' ? 'orgs' : view;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.view === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    let content;
    try {
      content = await VIEWS[view](args, params);
    } catch (e) {
      content = errorBox(e);
    }
    if (seq !== state.renderSeq) return;
    document.getElementById('main').replaceChildren(add(document.createDocumentFragment(), content));
    document.body.dataset.view = view;
  }

  async function start() {
    const main = document.getElementById('main');
    try {
      state.me = await api('GET', '/me');
    } catch (e) {
      main.replaceChildren(errorBox(e));
      return;
    }
    const me = state.me;
    document.getElementById('who').replaceChildren(
      me.email, ' · ', me.org_name, me.owner_admin ? ' (owner admin)' : ' (partner admin)');
    const visible = { orgs: can.orgs(), review: can.review(), audit: can.review() };
    for (const a of document.querySelectorAll('#nav a')) a.hidden = !visible[a.dataset.view];
    window.addEventListener('hashchange', render);
    await render();
  }

  start();
})();
