module github.com/beepchat/beep/services/community

go 1.26.5

require (
	connectrpc.com/connect v1.21.1
	github.com/google/uuid v1.6.0
	github.com/jackc/pgx/v5 v5.12.0
	google.golang.org/protobuf v1.36.12
)
