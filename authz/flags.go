package authz

import (
	"fmt"
	"math/bits"
	"strings"
)

// Flag is one Discord permission a role can hold, such as FlagViewChannel.
// The flags and their order come from the server#grant_<flag> relations of
// the schema.
type Flag uint8

type flagInfo struct {
	name         string
	overwritable bool
}

// Flags is a set of Flag, Discord's permission bitfield.
type Flags uint64

// AllFlags is every flag of the schema.
func AllFlags() Flags { return Flags(1)<<len(flagTable) - 1 }

// FlagsOf is the set of the given flags.
func FlagsOf(flags ...Flag) Flags {
	var out Flags
	for _, f := range flags {
		out |= f.bit()
	}
	return out
}

func (f Flag) bit() Flags { return Flags(1) << f }

// Name is the flag's schema name, such as "view_channel".
func (f Flag) Name() string {
	if int(f) >= len(flagTable) {
		return fmt.Sprintf("flag(%d)", uint8(f))
	}
	return flagTable[f].name
}

func (f Flag) String() string { return f.Name() }

// Overwritable is true when channels and categories can allow or deny the flag.
func (f Flag) Overwritable() bool { return int(f) < len(flagTable) && flagTable[f].overwritable }

// ServerPermission is the server-wide permission of the flag (server#<flag>).
func (f Flag) ServerPermission() Permission {
	return Permission{ResourceType: TypeServer, Name: f.Name()}
}

// ChannelPermission is the flag's permission on a channel (or, with the
// resource type changed, a category); ok is false for server-only flags.
func (f Flag) ChannelPermission() (p Permission, ok bool) {
	if !f.Overwritable() {
		return Permission{}, false
	}
	return Permission{ResourceType: TypeChannel, Name: f.Name()}, true
}

// ParseFlag finds a flag by its schema name.
func ParseFlag(name string) (Flag, error) {
	for i, info := range flagTable {
		if info.name == name {
			return Flag(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown permission %q", ErrInvalid, name)
}

// ParseFlags finds flags by name; it fails on the first unknown name.
func ParseFlags(names []string) (Flags, error) {
	var out Flags
	for _, n := range names {
		f, err := ParseFlag(n)
		if err != nil {
			return 0, err
		}
		out |= f.bit()
	}
	return out, nil
}

// Has reports whether f is in the set.
func (s Flags) Has(f Flag) bool { return s&f.bit() != 0 }

// With is s plus other.
func (s Flags) With(other Flags) Flags { return s | other }

// Without is s less other.
func (s Flags) Without(other Flags) Flags { return s &^ other }

// Len is how many flags the set holds.
func (s Flags) Len() int { return bits.OnesCount64(uint64(s)) }

// List is the flags of the set, in schema order.
func (s Flags) List() []Flag {
	out := make([]Flag, 0, s.Len())
	for i := range flagTable {
		if s.Has(Flag(i)) {
			out = append(out, Flag(i))
		}
	}
	return out
}

// Names is the schema names of the flags of the set, in schema order.
func (s Flags) Names() []string {
	out := make([]string, 0, s.Len())
	for _, f := range s.List() {
		out = append(out, f.Name())
	}
	return out
}

func (s Flags) String() string { return "{" + strings.Join(s.Names(), ",") + "}" }

// NonOverwritable is the part of s that channels cannot overwrite.
func (s Flags) NonOverwritable() Flags {
	var out Flags
	for _, f := range s.List() {
		if !f.Overwritable() {
			out |= f.bit()
		}
	}
	return out
}
