// The forum's only script (the Content-Security-Policy allows no inline one).
// - Live replies on the last page of a topic, through squall-resume.js (loaded
//   first): a WebSocket, else Server-Sent Events, else long polling, resumed
//   from the last position after a disconnection so no reply is missed. Each
//   post comes as {id, html}; the html was rendered (escaped, Markdown
//   sanitised) by the server's Post module.
// - Mentions: a badge in the header counts new ones, over /notify.
// - Markdown preview under every editor, rendered by the server.
// - A confirmation before deleting a post.
(function () {
  'use strict';
  window.forum = {ready: null, received: 0, resets: 0, mentions: [], feed: null};

  function live() {
    const marker = document.getElementById('live');
    if (!marker) return;
    const list = document.getElementById('posts');
    const seen = new Set(Array.from(list.querySelectorAll('.post'), (node) => Number(node.dataset.id)));
    let after = Number(marker.dataset.after);

    function add(posts) {
      for (const post of posts) {
        if (seen.has(post.id)) continue;
        seen.add(post.id);
        after = Math.max(after, post.id);
        // In id order: a reply relayed while the backlog was read may come first.
        const later = Array.from(list.querySelectorAll('.post'))
          .find((node) => Number(node.dataset.id) > post.id);
        if (later) later.insertAdjacentHTML('beforebegin', post.html);
        else list.insertAdjacentHTML('beforeend', post.html);
        const node = document.getElementById('p' + post.id);
        node.classList.add('new');
        actions(node);
        window.forum.received += 1;
      }
    }

    // Posts come rendered for no one in particular: the controls this reader
    // may use are added here, as the server renders them on a reload (the
    // server checks each action again: these only save a reload).
    function actions(node) {
      const form = document.getElementById('reply-form');
      if (!form || !node.querySelector('.post-body')) return;
      const token = form.querySelector('input[name=_xsrf]').value;
      const bar = document.createElement('footer');
      bar.className = 'post-actions';
      const link = (text, href, css) => {
        const a = document.createElement('a');
        a.textContent = text;
        a.href = href;
        a.className = css;
        bar.appendChild(a);
      };
      const button = (text, action, css, question) => {
        const box = document.createElement('form');
        box.action = '/p/' + node.dataset.id + '/' + action;
        box.method = 'post';
        box.className = 'inline';
        if (question) { box.classList.add('confirm'); box.dataset.confirm = question; }
        const xsrf = document.createElement('input');
        xsrf.type = 'hidden';
        xsrf.name = '_xsrf';
        xsrf.value = token;
        const submit = document.createElement('button');
        submit.type = 'submit';
        submit.className = 'link ' + css;
        submit.textContent = text;
        box.append(xsrf, submit);
        bar.appendChild(box);
      };
      link('Quote', location.pathname + '?page=last&quote=' + node.dataset.id + '#reply-form', 'quote');
      if (node.dataset.author === list.dataset.me) {
        link('Edit', '/p/' + node.dataset.id + '/edit', 'edit');
        button('Delete', 'delete', 'danger', 'Delete this post?');
      }
      if (list.dataset.admin) button('Hide', 'hide', 'hide');
      node.appendChild(bar);
    }

    // Replies missed while the connection was down that the channel's
    // history no longer holds (a reset): from the database, by post id.
    let catching = null;
    function catchUp() {
      if (catching) return catching;
      catching = fetch(marker.dataset.poll + '?wait=0&after=' + after, {credentials: 'same-origin'})
        .then((response) => response.ok ? response.json() : {posts: []})
        .then((data) => { add(data.posts); })
        .catch(() => {})
        .then(() => { catching = null; });
      return catching;
    }

    // The topic's channel, resumed from the position the page was rendered
    // at: a WebSocket, else Server-Sent Events, else long polling.
    window.forum.feed = SquallResume.follow({
      channel: marker.dataset.channel,
      since: marker.dataset.since || null,
      websocket: marker.dataset.resumeSocket,
      eventsource: marker.dataset.events,
      poll: marker.dataset.feed,
      onmessage: (data) => {
        const message = JSON.parse(data);
        if (message.posts) add(message.posts);
      },
      onreset: () => { window.forum.resets += 1; catchUp(); },
      onstate: (state, feed) => {
        if (state === 'open') window.forum.ready = feed.transport;
        marker.classList.toggle('offline', state !== 'open');
      },
    });
  }

  function mentions() {
    const link = document.getElementById('notes');
    if (!link) return;
    const badge = document.getElementById('unseen');
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    let delay = 1000;
    function connect() {
      let socket;
      try {
        socket = new WebSocket(scheme + location.host + link.dataset.socket);
      } catch (error) {
        return;  // no live mentions here: the badge updates on the next page
      }
      socket.onopen = () => { delay = 1000; window.forum.mentionsReady = true; };
      socket.onmessage = (event) => {
        const note = JSON.parse(event.data);
        window.forum.mentions.push(note);
        badge.textContent = String(Number(badge.textContent || 0) + 1);
        badge.hidden = false;
        link.title = note.from + ' mentioned you in ' + note.title;
        link.classList.add('ping');
      };
      socket.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 30000); };
    }
    connect();
  }

  function previews() {
    for (const area of document.querySelectorAll('textarea[data-preview]')) {
      const form = area.form;
      const box = form.querySelector('.preview');
      const body = form.querySelector('.preview .post-body');
      const token = form.querySelector('input[name=_xsrf]').value;
      let timer = null;
      let asked = 0;
      const render = () => {
        const ticket = ++asked;
        const data = new URLSearchParams({body: area.value, _xsrf: token});
        fetch(area.dataset.preview, {method: 'POST', body: data, credentials: 'same-origin'})
          .then((response) => response.ok ? response.json() : null)
          .then((answer) => {
            if (!answer || ticket !== asked) return;  // a newer draft is on its way
            body.innerHTML = answer.html;  // sanitised by the server's allow-list
            box.hidden = !area.value.trim();
          });
      };
      area.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(render, 250); });
      if (area.value.trim()) render();
    }
  }

  function confirmations() {
    document.addEventListener('submit', (event) => {
      const form = event.target;
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  live();
  mentions();
  previews();
  confirmations();
})();
