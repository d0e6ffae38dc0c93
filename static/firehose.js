// The firehose page: every change of the mirror, logged to the console, over the
// browser's chosen transport, switching with the toggle from the same cursor.
(function () {
  'use strict';

  var count = 0;
  var cursor = null;
  var stop = function () {};
  var counter = document.getElementById('firehose-count');
  var last = document.getElementById('firehose-last');
  var pollMs = Number(last.dataset.pollMs) || 2000;

  function log(kind, event) {
    count += 1;
    counter.textContent = String(count);
    console.log('firehose', kind, event);
    last.textContent = kind + ' ' + JSON.stringify(event).slice(0, 600);
  }

  function startSse() {
    var source = new EventSource('/firehose/stream' + (cursor ? '?after=' + cursor : ''));
    ['update', 'delete', 'status.update'].forEach(function (kind) {
      source.addEventListener(kind, function (msg) {
        cursor = msg.lastEventId || cursor;
        log(kind, JSON.parse(msg.data));
      });
    });
    source.addEventListener('reset', function () { cursor = null; });
    stop = function () { source.close(); };
  }

  function startPolling() {
    var timer = null;
    var stopped = false;
    function tick() {
      var url = cursor ? '/firehose/poll?after=' + cursor : '/firehose/poll';
      fetch(url)
        .then(function (response) { return response.status === 204 ? null : response.json(); })
        .then(function (answer) {
          if (stopped || !answer) return;
          (answer.events || []).forEach(function (event) { log(event.event, event); });
          cursor = String(answer.cursor);
        })
        .catch(function (error) { console.warn('firehose poll failed', error); })
        .then(function () { if (!stopped) timer = setTimeout(tick, pollMs); });
    }
    tick();
    stop = function () { stopped = true; clearTimeout(timer); };
  }

  function start(transport) {
    stop();
    if (transport === 'poll') startPolling(); else startSse();
  }

  document.addEventListener('switchyard:transport', function (evt) { start(evt.detail); });
  start(document.body.dataset.transport);
})();
