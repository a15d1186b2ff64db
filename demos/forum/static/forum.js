// The forum's only script (the Content-Security-Policy allows no inline one).
// - Live replies on the last page of a topic, through squall-resume.js (loaded
//   first): a WebSocket, else Server-Sent Events, else long polling, resumed
//   from the last position after a disconnection so no reply is missed. Each
//   post comes as {id, html}; the html was rendered (escaped, Markdown
//   sanitised) by the server's Post module. The line under the replies says
//   when the page is offline, then how many replies it caught up.
// - Mentions: a badge in the header counts new ones, over /notify.
// - Markdown preview under every editor, rendered by the server.
// - A confirmation before deleting a post.
(function () {
  'use strict';
  window.forum = {ready: null, received: 0, resets: 0, caughtUp: 0, mentions: [], feed: null};

  function live() {
    const marker = document.getElementById('live');
    if (!marker) return;
    const list = document.getElementById('posts');
    const seen = new Set(Array.from(list.querySelectorAll('.post'), (node) => Number(node.dataset.id)));
    let after = Number(marker.dataset.after);

    // How many replies were added (those the page had already are not).
    function add(posts) {
      let added = 0;
      for (const post of posts) {
        if (seen.has(post.id)) continue;
        added += 1;
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
      return added;
    }

    // The line under the replies: live, offline, catching up, caught up.
    const idle = marker.textContent;
    let wasOpen = false;
    let away = false;       // offline since the last open
    let catching = null;    // {expected, seen, replies} while replaying what was missed
    function say(css, text) {
      marker.classList.remove('offline', 'catching-up', 'caught-up', 'failed');
      if (css) marker.classList.add(css);
      marker.textContent = text;
    }
    const plural = (n) => n + (n === 1 ? ' reply' : ' replies');
    function caughtUp(replies) {
      catching = null;
      window.forum.caughtUp = replies;
      say('caught-up', replies ? 'Back online: caught up ' + plural(replies) + ' posted while you were away.'
                               : 'Back online: no reply was posted while you were away.');
    }
    function counted(publications, replies) {
      if (!catching) return;
      catching.seen += publications;
      catching.replies += replies;
      if (catching.seen >= catching.expected) caughtUp(catching.replies);
    }
    function state(name, feed) {
      if (name === 'open') {
        window.forum.ready = feed.transport;
        if (away) {
          away = false;
          catching = {expected: feed.missed, seen: 0, replies: 0};
          if (feed.missed) say('catching-up', 'Back online: catching up ' + plural(feed.missed) + '…');
          else caughtUp(0);
        } else if (!wasOpen) {
          say('', idle);
        }
        wasOpen = true;
      } else if (name === 'failed') {
        say('failed', 'Live updates stopped (' + (feed.error ? feed.error.message : 'refused') +
            '): reload the page to see new replies.');
      } else if (name === 'retrying' || (name === 'connecting' && (wasOpen || away))) {
        away = true;
        catching = null;
        say('offline', 'Offline: reconnecting. Replies posted meanwhile will appear when the connection is back.');
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
    let fetching = null;
    function catchUp() {
      if (fetching) return fetching;
      const replay = catching;
      fetching = fetch(marker.dataset.poll + '?wait=0&after=' + after, {credentials: 'same-origin'})
        .then((response) => response.ok ? response.json() : {posts: []})
        .then((data) => {
          const replies = add(data.posts);
          if (replay && replay === catching) caughtUp(replay.replies + replies);
        })
        .catch(() => {})
        .then(() => { fetching = null; });
      return fetching;
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
        counted(1, message.posts ? add(message.posts) : 0);
      },
      // Too long away for the channel's history: from the database.
      onreset: () => {
        window.forum.resets += 1;
        if (!catching) catching = {expected: Infinity, seen: 0, replies: 0};
        say('catching-up', 'Back online: catching up from the database…');
        catchUp();
      },
      onstate: state,
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
