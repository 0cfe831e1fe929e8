package chat

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// mentions are what a message's text pings, in Discord's syntax.
type mentions struct {
	users    []string // <@id> or <@!id>
	roles    []string // <@&id>
	everyone bool     // @everyone
	here     bool     // @here
}

// maxMentions bounds the users, and the roles, one message pings; further
// ones are left as text.
const maxMentions = 100

var (
	// Code is text, not mentions: fenced blocks, then inline spans.
	codeBlock   = regexp.MustCompile("(?s)```.*?```")
	inlineCode  = regexp.MustCompile("`[^`\n]*`")
	userMention = regexp.MustCompile(`<@!?([a-zA-Z0-9/_|\-=+]{1,200})>`)
	roleMention = regexp.MustCompile(`<@&([0-9a-fA-F-]{36})>`)
	// @everyone and @here as words (not inside an address such as a@here.org).
	broadMention = regexp.MustCompile(`(?:^|[^\w@.])@(everyone|here)\b`)
)

// parseMentions reads the mentions of a message's text.
func parseMentions(content string) mentions {
	var m mentions
	// Every mention has an @; most messages have none, and the regular
	// expressions cost a message about 13 µs of CPU.
	if !strings.Contains(content, "@") {
		return m
	}
	text := content
	if strings.Contains(text, "`") {
		text = codeBlock.ReplaceAllString(text, " ")
		text = inlineCode.ReplaceAllString(text, " ")
	}
	for _, sub := range userMention.FindAllStringSubmatch(text, -1) {
		if len(m.users) < maxMentions && !slices.Contains(m.users, sub[1]) {
			m.users = append(m.users, sub[1])
		}
	}
	for _, sub := range roleMention.FindAllStringSubmatch(text, -1) {
		id, err := uuid.Parse(sub[1])
		if err != nil {
			continue
		}
		if r := id.String(); len(m.roles) < maxMentions && !slices.Contains(m.roles, r) {
			m.roles = append(m.roles, r)
		}
	}
	for _, sub := range broadMention.FindAllStringSubmatch(text, -1) {
		switch sub[1] {
		case "everyone":
			m.everyone = true
		case "here":
			m.here = true
		}
	}
	return m
}

// broad is whether the mentions may need mention_everyone: @everyone,
// @here, or a role.
func (m mentions) broad() bool { return m.everyone || m.here || len(m.roles) > 0 }

// gate keeps @everyone, @here and role mentions only when the author may
// ping them (Discord: the message is sent anyway, without pinging them):
// all of them with mention_everyone in the conversation; without it, only
// the roles that are mentionable (role#mention: a member of the role's
// server pinging a role its managers allowed anyone to mention). A DM has
// no roles to ping.
func (s *Service) gate(ctx context.Context, author authz.Principal, c conversation, m mentions, consistency authz.Consistency) (mentions, error) {
	if !m.broad() {
		return m, nil
	}
	if c.typ == authz.TypeDmChannel {
		m.roles = nil
	}
	d, err := s.authz.Check(ctx, c.check(author.Subject(), permMentionEveryone), consistency)
	if err != nil {
		return m, err
	}
	if d.Allowed {
		return m, nil
	}
	m.everyone, m.here = false, false
	if len(m.roles) == 0 {
		return m, nil
	}
	checks := make([]authz.Check, len(m.roles))
	for i, r := range m.roles {
		checks[i] = authz.Check{Subject: author.Subject(), Permission: authz.Role.Mention, ResourceID: r}
	}
	decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
	if err != nil {
		return m, err
	}
	var mentionable []string
	for i, r := range m.roles {
		if decisions[i].Allowed {
			mentionable = append(mentionable, r)
		}
	}
	m.roles = mentionable
	return m, nil
}

// pinged are the users a message pings by name: its mentions but its author.
func (m mentions) pinged(author string) []string {
	out := make([]string, 0, len(m.users))
	for _, u := range m.users {
		if u != author {
			out = append(out, u)
		}
	}
	return out
}

func (m mentions) proto() *chatv1.Mentions {
	return &chatv1.Mentions{UserIds: m.users, RoleIds: m.roles, Everyone: m.everyone, Here: m.here}
}
