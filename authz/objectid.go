package authz

// maxIDLength is the longest object id SpiceDB takes.
const maxIDLength = 1024

// MaxUserIDLength is the longest user id Beep takes (a shorter bound than
// SpiceDB's, so that a user id fits in every key and log line).
const MaxUserIDLength = 200

// ValidObjectID reports whether id is an object id SpiceDB takes: 1 to
// 1,024 of a-z, A-Z, 0-9 and / _ | - = + (so never the wildcard "*").
// It is on every request's path, so it reads bytes rather than running a
// regular expression.
func ValidObjectID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/', c == '_', c == '|', c == '-', c == '=', c == '+':
		default:
			return false
		}
	}
	return true
}

// ValidUserID reports whether id can name a user: an object id of at most
// MaxUserIDLength bytes.
func ValidUserID(id string) bool { return len(id) <= MaxUserIDLength && ValidObjectID(id) }
