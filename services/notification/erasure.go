package notification

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
	"github.com/beepchat/beep/gen/beep/notification/v1/notificationv1connect"
)

var _ notificationv1connect.ErasureServiceHandler = (*Service)(nil)

// InternalHandler returns the path and the Connect handler of the service's
// internal API (ErasureService), which only the user service calls: the
// gateway does not route it.
func (s *Service) InternalHandler(opts ...connect.HandlerOption) (string, http.Handler) {
	return notificationv1connect.NewErasureServiceHandler(s, opts...)
}

// EraseUser removes a user's notifications and mutes, and those others got
// from their messages, in one transaction.
func (s *Service) EraseUser(ctx context.Context, req *connect.Request[notificationv1.EraseUserRequest]) (*connect.Response[notificationv1.EraseUserResponse], error) {
	userID := req.Msg.UserId
	if userID == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("user_id is required"))
	}
	out := &notificationv1.EraseUserResponse{}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM notifications WHERE user_id = $1 OR author_id = $1`, userID)
		if err != nil {
			return err
		}
		out.NotificationsRemoved = uint32(tag.RowsAffected())
		if tag, err = tx.Exec(ctx, `DELETE FROM mutes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		out.MutesRemoved = uint32(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "erase user", err)
	}
	return connect.NewResponse(out), nil
}
