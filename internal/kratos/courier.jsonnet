// What Kratos' HTTP courier posts to Beep's development courier.
function(ctx) {
  recipient: ctx.recipient,
  subject: ctx.subject,
  body: ctx.body,
  template_type: ctx.template_type,
}
