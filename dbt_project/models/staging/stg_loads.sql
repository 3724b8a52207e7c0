-- One row per partner file the gate saw, whatever its fate: typing only, joined with nothing.
select
    cast(load_id as varchar) as load_id,
    cast(return_type as varchar) as return_type,
    cast(partner_code as varchar) as partner_code,
    cast(period as varchar) as period,
    cast(file_name as varchar) as file_name,
    cast(checksum_sha256 as varchar) as checksum_sha256,
    cast(size_bytes as bigint) as size_bytes,
    cast(row_count as integer) as row_count,
    cast(is_nil as boolean) as is_nil,
    cast(received_at as timestamp) as received_at,
    cast(validated_at as timestamp) as validated_at,
    cast(modified_at as timestamp) as modified_at,
    cast(arrival_seq as bigint) as arrival_seq,
    cast(status as varchar) as load_status,
    cast(error_count as integer) as error_count,
    cast(duplicate_of as varchar) as duplicate_of
from {{ source('audit', 'loads') }}
