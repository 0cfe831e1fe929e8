package kratos

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// UIPages are the pages Kratos' browser flows send people to (its ui_url
// settings, under UIPath): sign in, sign up, settings (link and unlink
// providers, change the password), recovery, verification and errors. Each
// reads its flow from Kratos' public API with the browser's cookies and
// renders the flow's form as Kratos describes it: plain HTML forms posting
// to Kratos, no script. Enough to use Beep from a browser; an app brings
// its own.
type UIPages struct {
	// PublicURL is Kratos' public API.
	PublicURL string
	// Client makes the calls (http.DefaultClient when nil).
	Client *http.Client
}

// UIPath is where the pages live, on Beep's public port.
const UIPath = "/auth/"

// uiFlows are the pages, by the flow each shows.
var uiFlows = map[string]string{
	"login": "Sign in", "registration": "Sign up", "settings": "Account settings",
	"recovery": "Recover your account", "verification": "Verify your address", "error": "Something went wrong",
}

// uiEnv points Kratos' flows at the pages under base (Beep's public URL).
func uiEnv(base string) []string {
	base = strings.TrimRight(base, "/") + strings.TrimRight(UIPath, "/")
	var env []string
	for flow := range uiFlows {
		env = append(env, "SELFSERVICE_FLOWS_"+strings.ToUpper(flow)+"_UI_URL="+base+"/"+flow)
	}
	return env
}

type uiFlow struct {
	UI struct {
		Action   string      `json:"action"`
		Method   string      `json:"method"`
		Messages []uiMessage `json:"messages"`
		Nodes    []struct {
			Group      string `json:"group"`
			Attributes struct {
				Name     string `json:"name"`
				Type     string `json:"type"`
				Value    any    `json:"value"`
				Required bool   `json:"required"`
				Disabled bool   `json:"disabled"`
			} `json:"attributes"`
			Messages []uiMessage `json:"messages"`
			Meta     struct {
				Label *uiMessage `json:"label"`
			} `json:"meta"`
		} `json:"nodes"`
	} `json:"ui"`
	// Error, for the error flow.
	Error any `json:"error"`
}

type uiMessage struct {
	Text string `json:"text"`
	Type string `json:"type"`
}

var uiPage = template.Must(template.New("page").Funcs(template.FuncMap{
	"value": func(v any) string {
		if v == nil {
			return ""
		}
		if s, ok := v.(string); ok {
			return s
		}
		b, _ := json.Marshal(v)
		return string(b)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · Beep</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label,button{display:block;margin:.6em 0}input{width:100%}.error{color:#b00}</style>
</head><body><h1>{{.Title}}</h1>
{{range .Flow.UI.Messages}}<p class="{{.Type}}">{{.Text}}</p>{{end}}
{{if .Flow.Error}}<pre class="error">{{value .Flow.Error}}</pre>{{end}}
{{if .Flow.UI.Action}}<form action="{{.Flow.UI.Action}}" method="{{.Flow.UI.Method}}">
{{range .Flow.UI.Nodes}}{{$a := .Attributes}}{{if eq $a.Type "hidden"}}<input type="hidden" name="{{$a.Name}}" value="{{value $a.Value}}">
{{else if eq $a.Type "submit" "button"}}<button type="submit" name="{{$a.Name}}" value="{{value $a.Value}}">{{with .Meta.Label}}{{.Text}}{{else}}{{value $a.Value}}{{end}}</button>
{{else if $a.Name}}<label>{{with .Meta.Label}}{{.Text}}{{else}}{{$a.Name}}{{end}}
<input type="{{$a.Type}}" name="{{$a.Name}}" value="{{value $a.Value}}"{{if $a.Required}} required{{end}}{{if $a.Disabled}} disabled{{end}}></label>
{{end}}{{range .Messages}}<p class="{{.Type}}">{{.Text}}</p>{{end}}{{end}}
</form>{{end}}
<p><a href="{{.Base}}login/browser">Sign in</a> · <a href="{{.Base}}registration/browser">Sign up</a> · <a href="{{.Base}}settings/browser">Settings</a> · <a href="{{.Base}}recovery/browser">Forgot your password?</a></p>
</body></html>
`))

// ServeHTTP renders the page of a flow: UIPath + kind, with ?flow= (or ?id=
// for errors). Without a flow, it starts one.
func (u *UIPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := strings.TrimPrefix(r.URL.Path, UIPath)
	title, ok := uiFlows[kind]
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	id := r.URL.Query().Get("flow")
	if kind == "error" {
		id = r.URL.Query().Get("id")
	}
	if id == "" && kind != "error" {
		http.Redirect(w, r, "/self-service/"+kind+"/browser", http.StatusSeeOther)
		return
	}
	endpoint := "/self-service/" + kind + "/flows?id=" + url.QueryEscape(id)
	if kind == "error" {
		endpoint = "/self-service/errors?id=" + url.QueryEscape(id)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, strings.TrimRight(u.PublicURL, "/")+endpoint, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Header.Set("Cookie", r.Header.Get("Cookie"))
	req.Header.Set("Accept", "application/json")
	client := u.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		http.Error(w, "the identity server did not answer", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden {
		// Expired or foreign: start again.
		http.Redirect(w, r, "/self-service/"+kind+"/browser", http.StatusSeeOther)
		return
	}
	var flow uiFlow
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &flow) != nil {
		http.Error(w, fmt.Sprintf("the identity server answered %s", resp.Status), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = uiPage.Execute(w, map[string]any{"Title": title, "Flow": flow, "Base": "/self-service/"})
}
