package kratos

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// Courier is Beep's development courier: Kratos posts the messages it would
// email (verification and recovery codes, ...) to it, over HTTP, and it
// writes them to the log instead of sending them. For development and
// tests only: in production Kratos sends through SMTP.
type Courier struct {
	// Log receives each message.
	Log *slog.Logger
}

// courierMessage is what courier.jsonnet makes of a message.
type courierMessage struct {
	Recipient    string `json:"recipient"`
	Subject      string `json:"subject"`
	Body         string `json:"body"`
	TemplateType string `json:"template_type"`
}

// ServeHTTP logs one message.
func (c *Courier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST a message", http.StatusMethodNotAllowed)
		return
	}
	var m courierMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&m); err != nil {
		http.Error(w, "not a courier message: "+err.Error(), http.StatusBadRequest)
		return
	}
	c.Log.Info("message not sent (development courier)", "to", m.Recipient, "template", m.TemplateType, "subject", m.Subject, "body", m.Body)
	w.WriteHeader(http.StatusNoContent)
}

// courierEnv makes Kratos deliver messages over HTTP to url, with the body
// courier.jsonnet makes.
func courierEnv(url, body string) []string {
	return []string{
		"COURIER_DELIVERY_STRATEGY=http",
		"COURIER_HTTP_REQUEST_CONFIG_URL=" + url,
		"COURIER_HTTP_REQUEST_CONFIG_METHOD=POST",
		"COURIER_HTTP_REQUEST_CONFIG_BODY=file://" + body,
	}
}
