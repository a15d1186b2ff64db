// Live replies on the last page of a topic: a WebSocket, or long polling
// when no socket can be opened. Each post comes as {id, html}; the html was
// rendered (and escaped) by the server's Post module.
(function () {
  'use strict';
  const live = document.getElementById('live');
  window.forum = {ready: null, received: 0};
  if (!live) return;
  const list = document.getElementById('posts');
  const seen = new Set(Array.from(list.querySelectorAll('.post'), (node) => Number(node.dataset.id)));
  let after = Number(live.dataset.after);

  function add(posts) {
    for (const post of posts) {
      if (seen.has(post.id)) continue;
      seen.add(post.id);
      after = Math.max(after, post.id);
      list.insertAdjacentHTML('beforeend', post.html);
      list.lastElementChild.classList.add('new');
      window.forum.received += 1;
    }
  }

  function poll() {
    window.forum.ready = 'poll';
    fetch(live.dataset.poll + '?after=' + after, {credentials: 'same-origin'})
      .then((response) => {
        if (!response.ok) throw new Error('poll answered ' + response.status);
        return response.json();
      })
      .then((data) => { add(data.posts); poll(); })
      .catch(() => setTimeout(poll, 2000));
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const socket = new WebSocket(scheme + location.host + live.dataset.socket + '?after=' + after);
    let opened = false;
    socket.onopen = () => { opened = true; window.forum.ready = 'websocket'; };
    socket.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (data.posts) add(data.posts);
    };
    socket.onclose = () => {
      // Never opened: WebSockets do not get through, so poll instead.
      // Lost after opening: reconnect, asking for what was missed.
      if (opened) setTimeout(connect, 1000); else poll();
    };
  }

  connect();
})();
