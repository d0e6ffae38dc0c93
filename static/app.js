// Switchyard's page logic. htmx and its SSE extension move the items; this file
// switches transports in place, keeps each region's cursor, and reloads a region
// when the server says it cannot be continued.
(function () {
  'use strict';

  var MAX_ITEMS = 200;

  function controlOf(el) { return el && el.closest('.live-ctl'); }
  function regionOf(el) { return el && el.closest('[data-live]'); }

  function flash(text) {
    var box = document.getElementById('flash');
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  // SSE: skip events the region has shown already, and remember the newest id so
  // that a switch or a fresh connection continues from it.
  document.body.addEventListener('htmx:sseBeforeMessage', function (evt) {
    var msg = evt.detail;
    var ctl = controlOf(evt.target);
    if (!ctl) return;
    if (msg.type === 'reset') {
      evt.preventDefault();
      reloadRegion(regionOf(ctl));
      return;
    }
    if (ctl.dataset.switching) {
      evt.preventDefault();
      return;
    }
    var id = msg.lastEventId;
    if (id && /^\d+$/.test(id)) {
      if (ctl.dataset.cursor && Number(id) <= Number(ctl.dataset.cursor)) {
        evt.preventDefault();
        return;
      }
      ctl.dataset.cursor = id;
    }
  });

  // Every open EventSource of the page, for closing them when the page is left.
  var sources = [];

  // When the extension opens a new EventSource after a hard failure, it reuses the
  // address the page was rendered with; continue from the newest cursor instead.
  htmx.createEventSource = function (url) {
    var ctl = document.querySelector('.live-ctl[sse-connect="' + CSS.escape(url) + '"]');
    if (ctl && ctl.dataset.cursor) {
      url = url.replace(/([?&]after=)\d*/, '$1' + ctl.dataset.cursor);
    }
    var source = new EventSource(url);
    sources = sources.filter(function (s) { return s.readyState !== EventSource.CLOSED; });
    sources.push(source);
    return source;
  };

  // A page left for another may stay in the back/forward cache with its streams open,
  // holding the server's slots, the user's presence and the browser's few connections
  // per host. Close them on leaving; on coming back, reload the regions.
  window.addEventListener('pagehide', function () {
    sources.forEach(function (source) { source.close(); });
    sources = [];
  });
  window.addEventListener('pageshow', function (evt) {
    if (evt.persisted) document.querySelectorAll('[data-live]').forEach(reloadRegion);
  });

  document.body.addEventListener('htmx:sseOpen', function (evt) {
    var region = regionOf(evt.target);
    if (region) region.dataset.state = 'open';
  });
  document.body.addEventListener('htmx:sseError', function (evt) {
    var region = regionOf(evt.target);
    if (region) region.dataset.state = 'retrying';
  });
  document.body.addEventListener('htmx:responseError', function (evt) {
    flash('The server answered ' + evt.detail.xhr.status + '; retrying.');
  });
  document.body.addEventListener('htmx:sendError', function () {
    flash('The server cannot be reached; retrying.');
  });
  document.body.addEventListener('htmx:afterRequest', function (evt) {
    if (evt.detail.successful) flash('');
  });

  // Long-open pages should not grow without end.
  document.body.addEventListener('htmx:afterSwap', function () {
    document.querySelectorAll('[data-live] > .items').forEach(function (list) {
      while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
    });
  });

  function reloadRegion(region) {
    if (!region || region.dataset.reloading) return;
    region.dataset.reloading = '1';
    var ctl = region.querySelector(':scope > .live-ctl');
    if (ctl) ctl.dataset.switching = '1';
    fetch(region.dataset.regionUrl, { headers: { 'HX-Request': 'true' } })
      .then(function (response) {
        if (!response.ok) throw new Error('status ' + response.status);
        return response.text();
      })
      .then(function (html) { htmx.swap(region, html, { swapStyle: 'outerHTML' }); })
      .catch(function (error) {
        delete region.dataset.reloading;
        flash('Could not reload: ' + error.message);
      });
  }

  // The toggle: remember the choice, then swap each region's control in place (but
  // not in a region pinned to one transport, as on the comparison page). The
  // old transport stops first (a poll in flight is aborted, SSE events are held back)
  // so the cursor handed to the new one is final: nothing twice, nothing missed.
  function switchRegion(region, transport) {
    var ctl = region.querySelector(':scope > .live-ctl');
    if (!ctl || region.dataset.pinned || ctl.dataset.transport === transport) {
      return Promise.resolve();
    }
    ctl.dataset.switching = '1';
    htmx.trigger(ctl, 'htmx:abort');
    var url = region.dataset.controlUrl + '?after=' + encodeURIComponent(ctl.dataset.cursor || '');
    return fetch(url, { headers: { 'HX-Request': 'true' } })
      .then(function (response) {
        if (!response.ok) throw new Error('status ' + response.status);
        return response.text();
      })
      .then(function (html) { htmx.swap(ctl, html, { swapStyle: 'outerHTML' }); });
  }

  function switchTo(transport) {
    document.body.dataset.transport = transport;
    document.querySelectorAll('[data-transport-choice]').forEach(function (button) {
      button.setAttribute('aria-pressed', String(button.dataset.transportChoice === transport));
    });
    var regions = Array.prototype.slice.call(document.querySelectorAll('[data-live]'));
    document.dispatchEvent(new CustomEvent('switchyard:transport', { detail: transport }));
    return Promise.all(regions.map(function (region) { return switchRegion(region, transport); }));
  }

  document.addEventListener('click', function (evt) {
    var button = evt.target.closest('[data-transport-choice]');
    if (!button) return;
    evt.preventDefault();
    var transport = button.dataset.transportChoice;
    fetch('/transport', {
      method: 'POST',
      headers: { 'HX-Request': 'true', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'transport=' + encodeURIComponent(transport)
    })
      .then(function (response) {
        if (!response.ok) throw new Error('status ' + response.status);
        return switchTo(transport);
      })
      .then(function () { flash(''); })
      .catch(function (error) { flash('Could not switch: ' + error.message); });
  });
})();
