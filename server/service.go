package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// service implements pb.LedgerServiceServer on a Server.
type service struct {
	pb.UnimplementedLedgerServiceServer
	s *Server
}

func result(r *ledger.WriteResult) *pb.WriteResult {
	return &pb.WriteResult{Receipt: r.Receipt, Index: r.Index, Duplicate: r.Duplicate}
}

func (v *service) PublishLetter(ctx context.Context, req *pb.PublishLetterRequest) (*pb.PublishLetterResponse, error) {
	r, err := v.s.ledger.PublishLetter(ctx, callerOf(ctx), req.GetLetter(), req.GetIdempotencyKey())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.PublishLetterResponse{Result: result(r)}, nil
}

func (v *service) Endorse(ctx context.Context, req *pb.EndorseRequest) (*pb.EndorseResponse, error) {
	r, err := v.s.ledger.Endorse(ctx, callerOf(ctx), req.GetEndorsement(), req.GetDisclosure(),
		ledger.EndorseOptions{IdempotencyKey: req.GetIdempotencyKey(), ReaddAfterRedaction: req.GetReaddAfterRedaction()})
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.EndorseResponse{Result: result(r)}, nil
}

// streamWindow is how many endorsements of one stream are in flight at
// once.
const streamWindow = 2048

func (v *service) EndorseStream(stream pb.LedgerService_EndorseStreamServer) error {
	ctx := stream.Context()
	c := callerOf(ctx)
	if c.Token == nil {
		return v.s.toStatus(ctx, ledger.ErrUnauthenticated)
	}
	slots := make(chan chan *pb.EndorseStreamResponse, streamWindow)
	recvErr := make(chan error, 1)
	go func() {
		defer close(slots)
		for {
			req, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr <- err
				}
				return
			}
			slot := make(chan *pb.EndorseStreamResponse, 1)
			select {
			case slots <- slot:
			case <-ctx.Done():
				return
			}
			// A bulk import waits for room rather than being refused: its
			// window already bounds what it has in flight.
			if err := v.s.writes.Acquire(ctx, 1); err != nil {
				return
			}
			go func() {
				defer v.s.writes.Release(1)
				r, err := v.s.ledger.Endorse(ctx, c, req.GetEndorsement(), req.GetDisclosure(),
					ledger.EndorseOptions{IdempotencyKey: req.GetIdempotencyKey(), ReaddAfterRedaction: req.GetReaddAfterRedaction()})
				if err != nil {
					slot <- &pb.EndorseStreamResponse{Result: &pb.EndorseStreamResponse_Rejected{Rejected: v.rejection(ctx, err)}}
					return
				}
				slot <- &pb.EndorseStreamResponse{Result: &pb.EndorseStreamResponse_Written{Written: result(r)}}
			}()
		}
	}()
	for slot := range slots {
		var resp *pb.EndorseStreamResponse
		select {
		case resp = <-slot:
		case <-ctx.Done():
			return v.s.toStatus(ctx, ctx.Err())
		}
		if err := stream.Send(resp); err != nil {
			return v.s.toStatus(ctx, fmt.Errorf("send a response: %w", err))
		}
	}
	select {
	case err := <-recvErr:
		return v.s.toStatus(ctx, fmt.Errorf("receive a request: %w", err))
	default:
		return nil
	}
}

func (v *service) rejection(ctx context.Context, err error) *pb.Rejection {
	st := status.Convert(v.s.toStatus(ctx, err))
	r := &pb.Rejection{Code: uint32(st.Code()), Message: st.Message()}
	if fe, ok := records.AsFieldError(err); ok {
		r.Field, r.Rule = fe.Field, fe.Rule
	}
	return r
}

func (v *service) Withdraw(ctx context.Context, req *pb.WithdrawRequest) (*pb.WithdrawResponse, error) {
	r, err := v.s.ledger.Withdraw(ctx, callerOf(ctx), req.GetWithdrawal())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.WithdrawResponse{Result: result(r)}, nil
}

func (v *service) Redact(ctx context.Context, req *pb.RedactRequest) (*pb.RedactResponse, error) {
	r, err := v.s.ledger.Redact(ctx, callerOf(ctx), req.GetRedaction())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.RedactResponse{Result: result(r)}, nil
}

func (v *service) SetLetterStatus(ctx context.Context, req *pb.SetLetterStatusRequest) (*pb.SetLetterStatusResponse, error) {
	r, err := v.s.ledger.SetLetterStatus(ctx, callerOf(ctx), req.GetStatus())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.SetLetterStatusResponse{Result: result(r)}, nil
}

func (v *service) ChangeOrganiser(ctx context.Context, req *pb.ChangeOrganiserRequest) (*pb.ChangeOrganiserResponse, error) {
	r, err := v.s.ledger.ChangeOrganiser(ctx, callerOf(ctx), req.GetChange())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.ChangeOrganiserResponse{Result: result(r)}, nil
}

func (v *service) GetLogInfo(ctx context.Context, _ *pb.GetLogInfoRequest) (*pb.GetLogInfoResponse, error) {
	info, err := v.s.ledger.Info(ctx)
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.GetLogInfoResponse{Origin: info.Origin, VerifierKey: info.VerifierKey, Engine: info.Engine, Size: info.Size}, nil
}

func (v *service) GetCheckpoint(ctx context.Context, _ *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	cp, err := v.s.ledger.Checkpoint(ctx)
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.GetCheckpointResponse{Checkpoint: cp.Raw, Size: cp.Size}, nil
}

func (v *service) GetEntries(req *pb.GetEntriesRequest, stream pb.LedgerService_GetEntriesServer) error {
	ctx := stream.Context()
	err := v.s.ledger.Entries(ctx, req.GetStart(), req.GetEnd(), func(b ledger.EntryBatch) error {
		return stream.Send(&pb.GetEntriesResponse{Entries: b})
	})
	return v.s.toStatus(ctx, err)
}

func (v *service) GetInclusionProof(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	p, size, cp, leaf, err := v.s.ledger.InclusionProof(ctx, req.GetIndex(), req.GetTreeSize())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	resp := &pb.GetInclusionProofResponse{Index: req.GetIndex(), TreeSize: size, Hashes: p, LeafHash: leaf}
	if cp != nil {
		resp.Checkpoint = cp.Raw
	}
	return resp, nil
}

func (v *service) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	p, size, cp, err := v.s.ledger.ConsistencyProof(ctx, req.GetFromSize(), req.GetToSize())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	resp := &pb.GetConsistencyProofResponse{FromSize: req.GetFromSize(), ToSize: size, Hashes: p}
	if cp != nil {
		resp.Checkpoint = cp.Raw
	}
	return resp, nil
}

func counts(c ledger.Counts) *pb.Counts {
	return &pb.Counts{Public: c.Public, Private: c.Private, Redacted: c.Redacted, Withdrawn: c.Withdrawn, Superseded: c.Superseded}
}

func letterInfo(li *ledger.LetterInfo) *pb.LetterInfo {
	out := &pb.LetterInfo{
		Index:                li.Index,
		Record:               li.Record,
		Status:               li.Status,
		Counts:               counts(li.Counts),
		LetterId:             li.Letter.GetId(),
		Title:                li.Letter.GetTitle(),
		OrganiserKeys:        li.OrganiserKeys,
		RevokedOrganiserKeys: li.RevokedKeys,
	}
	if li.ClosedIndex != ledger.NoIndex {
		i := uint64(li.ClosedIndex)
		out.ClosedIndex = &i
	}
	if li.DeliveredIndex != ledger.NoIndex {
		i := uint64(li.DeliveredIndex)
		out.DeliveredIndex = &i
	}
	return out
}

func (v *service) GetLetter(ctx context.Context, req *pb.GetLetterRequest) (*pb.GetLetterResponse, error) {
	li, err := v.s.ledger.Letter(ctx, req.GetLetterId())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	return &pb.GetLetterResponse{Letter: letterInfo(li)}, nil
}

func pageSize(n uint32, def, max int) int {
	switch {
	case n == 0:
		return def
	case int(n) > max:
		return max
	}
	return int(n)
}

// The page tokens are opaque to clients: base64 of a decimal.
func encodePageToken(n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
}

func decodePageToken(t string, def int64) (int64, error) {
	if t == "" {
		return def, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err == nil {
		if n, err := strconv.ParseInt(string(b), 10, 64); err == nil && n >= def {
			return n, nil
		}
	}
	return 0, &records.FieldError{Field: "page_token", Rule: "must be a next_page_token returned by the server"}
}

func (v *service) ListLetters(ctx context.Context, req *pb.ListLettersRequest) (*pb.ListLettersResponse, error) {
	skip, err := decodePageToken(req.GetPageToken(), 0)
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	limit := pageSize(req.GetPageSize(), 100, 1000)
	ls, more, err := v.s.ledger.Letters(ctx, int(skip), limit)
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	resp := &pb.ListLettersResponse{}
	for _, li := range ls {
		resp.Letters = append(resp.Letters, letterInfo(li))
	}
	if more {
		resp.NextPageToken = encodePageToken(skip + int64(len(ls)))
	}
	return resp, nil
}

func rosterEntry(r ledger.RosterRow) (*pb.RosterEntry, error) {
	rec, err := records.Decode(r.Record)
	if err != nil {
		return nil, err
	}
	e := rec.GetEndorsement()
	return &pb.RosterEntry{
		Index:        r.Index,
		Visibility:   e.GetVisibility(),
		Disclosure:   r.Disclosure,
		Redacted:     r.Redacted,
		Verification: e.GetVerification(),
		SignerSigned: e.GetSigner() != nil,
		AcceptedAt:   rec.GetAcceptedAt(),
	}, nil
}

func (v *service) GetRoster(ctx context.Context, req *pb.GetRosterRequest) (*pb.GetRosterResponse, error) {
	after, err := decodePageToken(req.GetPageToken(), -1)
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	limit := pageSize(req.GetPageSize(), 1000, 10000)
	rows, c, size, err := v.s.ledger.Roster(ctx, req.GetLetterId(), req.GetTreeSize(), after, limit)
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	resp := &pb.GetRosterResponse{TreeSize: size, Counts: counts(c)}
	for _, r := range rows {
		e, err := rosterEntry(r)
		if err != nil {
			return nil, v.s.toStatus(ctx, err)
		}
		resp.Entries = append(resp.Entries, e)
	}
	if len(rows) == limit {
		resp.NextPageToken = encodePageToken(int64(rows[len(rows)-1].Index))
	}
	return resp, nil
}

func (v *service) FindEndorsements(ctx context.Context, req *pb.FindEndorsementsRequest) (*pb.FindEndorsementsResponse, error) {
	rows, err := v.s.ledger.Find(ctx, req.GetLetterId(), req.GetQuery(), pageSize(req.GetPageSize(), 100, 1000))
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	resp := &pb.FindEndorsementsResponse{}
	for _, r := range rows {
		e, err := rosterEntry(r)
		if err != nil {
			return nil, v.s.toStatus(ctx, err)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

func (v *service) GetEndorsement(ctx context.Context, req *pb.GetEndorsementRequest) (*pb.GetEndorsementResponse, error) {
	st, size, err := v.s.ledger.Endorsement(ctx, req.GetIndex())
	if err != nil {
		return nil, v.s.toStatus(ctx, err)
	}
	resp := &pb.GetEndorsementResponse{Index: st.Index, TreeSize: size, State: pb.EndorsementState_ENDORSEMENT_STATE_COUNTED}
	opt := func(i int64) *uint64 {
		if i < 0 {
			return nil
		}
		u := uint64(i)
		return &u
	}
	resp.WithdrawnBy, resp.RedactedBy, resp.SupersededBy = opt(st.WithdrawnBy), opt(st.RedactedBy), opt(st.SupersededBy)
	switch {
	case st.WithdrawnBy >= 0:
		resp.State = pb.EndorsementState_ENDORSEMENT_STATE_WITHDRAWN
	case st.SupersededBy >= 0:
		resp.State = pb.EndorsementState_ENDORSEMENT_STATE_SUPERSEDED
	case st.RedactedBy >= 0:
		resp.State = pb.EndorsementState_ENDORSEMENT_STATE_COUNTED_REDACTED
	}
	return resp, nil
}
