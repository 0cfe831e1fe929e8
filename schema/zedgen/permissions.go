package main

// Prerequisite names the permission a channel permission cannot exist
// without (Discord's implicit permissions).
type Prerequisite string

const (
	// NoPrerequisite is for view_channel itself and server-only permissions.
	NoPrerequisite Prerequisite = ""
	// NeedsView: without view_channel no other channel permission holds.
	NeedsView Prerequisite = "view_channel"
	// NeedsSend: without send_messages there is no mention_everyone,
	// attach_files or embed_links.
	NeedsSend Prerequisite = "send_messages"
	// NeedsConnect: without connect no voice permission holds.
	NeedsConnect Prerequisite = "connect"
)

// Permission is one Discord permission bit as Beep models it.
type Permission struct {
	// Name is the SpiceDB permission name, Discord's flag in snake case.
	Name string
	// Doc is one line for the generated schema.
	Doc string
	// Overwritable permissions can be allowed or denied per category and
	// channel; the others exist only at the server level.
	Overwritable bool
	// Requires is the implicit prerequisite inside a channel.
	Requires Prerequisite
	// KeptWhileTimedOut is true for the two permissions a timed-out member
	// keeps (view_channel and read_message_history).
	KeptWhileTimedOut bool
	// Staff is true where platform staff hold the permission on public
	// servers (view, read history, ban).
	Staff bool
}

// permissions is the Discord permission table, in Discord's own order. The
// schema, the generated authz constants and docs/permissions.md follow it.
var permissions = []Permission{
	{Name: "create_invite", Doc: "create invites to the server or a channel", Overwritable: true, Requires: NeedsView},
	{Name: "kick_members", Doc: "remove members below one's highest role"},
	{Name: "ban_members", Doc: "ban members below one's highest role", Staff: true},
	{Name: "administrator", Doc: "every permission everywhere; channel overwrites do not apply"},
	{Name: "manage_channels", Doc: "create, edit, reorder and delete categories and channels", Overwritable: true, Requires: NeedsView},
	{Name: "manage_server", Doc: "edit server settings, manage invites"},
	{Name: "add_reactions", Doc: "add new reactions to messages", Overwritable: true, Requires: NeedsView},
	{Name: "view_audit_log", Doc: "read the server audit log"},
	{Name: "view_channel", Doc: "see a channel and its live messages", Overwritable: true, KeptWhileTimedOut: true, Staff: true},
	{Name: "send_messages", Doc: "post messages in a channel", Overwritable: true, Requires: NeedsView},
	{Name: "manage_messages", Doc: "delete others' messages, pin messages", Overwritable: true, Requires: NeedsView},
	{Name: "embed_links", Doc: "links show embedded previews", Overwritable: true, Requires: NeedsSend},
	{Name: "attach_files", Doc: "upload files with messages", Overwritable: true, Requires: NeedsSend},
	{Name: "read_message_history", Doc: "read messages sent before one connected", Overwritable: true, Requires: NeedsView, KeptWhileTimedOut: true, Staff: true},
	{Name: "mention_everyone", Doc: "use @everyone, @here and mention any role", Overwritable: true, Requires: NeedsSend},
	{Name: "connect", Doc: "join a voice channel", Overwritable: true, Requires: NeedsView},
	{Name: "speak", Doc: "talk in a voice channel", Overwritable: true, Requires: NeedsConnect},
	{Name: "video", Doc: "share camera or screen in a voice channel", Overwritable: true, Requires: NeedsConnect},
	{Name: "mute_members", Doc: "server-mute others in voice", Overwritable: true, Requires: NeedsConnect},
	{Name: "deafen_members", Doc: "server-deafen others in voice", Overwritable: true, Requires: NeedsConnect},
	{Name: "move_members", Doc: "move members between voice channels", Overwritable: true, Requires: NeedsConnect},
	{Name: "change_nickname", Doc: "change one's own nickname"},
	{Name: "manage_nicknames", Doc: "change others' nicknames"},
	{Name: "manage_roles", Doc: "create and edit roles below one's highest role; edit channel overwrites", Overwritable: true, Requires: NeedsView},
	{Name: "manage_webhooks", Doc: "create, edit and delete webhooks", Overwritable: true, Requires: NeedsView},
	{Name: "manage_threads", Doc: "rename, lock, archive and delete threads; see private threads", Overwritable: true, Requires: NeedsView},
	{Name: "create_threads", Doc: "start threads", Overwritable: true, Requires: NeedsView},
	{Name: "send_messages_in_threads", Doc: "post in threads (instead of send_messages)", Overwritable: true, Requires: NeedsView},
	{Name: "moderate_members", Doc: "time out members below one's highest role"},
}
