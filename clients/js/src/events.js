// events.js: the Event every part of the library dispatches.
//
// CustomEvent is not a global in Node 18, so the library's events are
// plain Events with a detail field, which is what listeners read in
// browsers and in Node alike.

/** An event carrying `detail`, like CustomEvent. */
export class ParleyEvent extends Event {
  /**
   * @param {string} type
   * @param {*} [detail]
   */
  constructor(type, detail) {
    super(type);
    this.detail = detail === undefined ? null : detail;
  }
}
