//! The service every arm serves: `SayHello` echoing its payload.

use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::proto::greeter_server::{Greeter, GreeterServer};
use crate::proto::{HelloReply, HelloRequest};

/// Answers each call with the request's payload, so request and response are the same size.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoGreeter;

#[tonic::async_trait]
impl Greeter for EchoGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let HelloRequest { name, payload } = request.into_inner();
        Ok(Response::new(HelloReply {
            message: name,
            payload,
        }))
    }
}

/// The greeter as tonic `Routes`, servable by hyper or by mesh.
pub fn routes() -> Routes {
    Routes::new(GreeterServer::new(EchoGreeter))
}
