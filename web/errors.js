// Errors the user can act on (a file that is not a picture, a picture too large...):
// the page shows their message as one line, without a stack trace.
export class UserError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UserError';
  }
}

// Raised inside a job when the user pressed Cancel.
export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}
