/* The officer console: the forms work without it; it only keeps a double click from sending one twice. */
(function () {
  'use strict';

  Array.prototype.forEach.call(document.querySelectorAll('form[method="post"]'), function (form) {
    form.addEventListener('submit', function (event) {
      if (form.getAttribute('data-sending') === 'true') {
        event.preventDefault();
        return;
      }
      form.setAttribute('data-sending', 'true');
      // (disabled after the form's data are taken, so the button's own value is not lost)
      window.setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll('button[type="submit"]'), function (button) {
          button.disabled = true;
        });
      }, 0);
    });
  });
}());
