// Errors the user can act on (a file that is not a picture, a picture too large...):
// the page shows their message as one line, without a stack trace.
export class UserError extends Error {
  name = 'UserError';
}

// Raised inside a job when the user pressed Cancel.
export class Cancelled extends Error {
  name = 'Cancelled';
  message = 'cancelled';
}
