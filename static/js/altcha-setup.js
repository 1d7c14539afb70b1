// The ALTCHA widget (vendored under /static/vendor/altcha-3.2.2, MIT licence) in its
// strict-CSP build: no inline styles or blob workers, so the proof-of-work
// worker is registered here from our own origin.
import "/static/vendor/altcha-3.2.2/i18n/ko.js";
import "/static/vendor/altcha-3.2.2/i18n/en.js";

const worker = () => new Worker("/static/vendor/altcha-3.2.2/workers/pbkdf2.js");
for (const algorithm of ["PBKDF2/SHA-256", "PBKDF2/SHA-384", "PBKDF2/SHA-512"]) {
  globalThis.$altcha.algorithms.set(algorithm, worker);
}
